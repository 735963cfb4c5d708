//! The arguments of `#[aggregate(name = "Account", snapshot_version = 2, crate = "...")]`:
//! `name` is required, `snapshot_version` defaults to 1, `crate` to `::eventsource`.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::{LitStr, Path};

use crate::errors::Errors;
use crate::values::{self, each_key, set};

const KEYS: &[&str] = &["name", "snapshot_version", "crate"];

pub(super) struct AggregateArgs {
    pub(super) name: LitStr,
    pub(super) snapshot_version: u32,
    pub(super) krate: Path,
}

impl AggregateArgs {
    /// The arguments, or `None` after reporting what is wrong with them.
    pub(super) fn parse(args: TokenStream, errors: &mut Errors) -> Option<Self> {
        let mut name: Option<LitStr> = None;
        let mut snapshot_version: Option<(u32, Span)> = None;
        let mut krate: Option<Path> = None;
        let mut on_key = |key: &'static str, value: &syn::Expr, errors: &mut Errors| match key {
            "name" => set(errors, &mut name, value, "aggregate", key, |v, e| {
                values::name(v, key, e)
            }),
            "snapshot_version" => set(
                errors,
                &mut snapshot_version,
                value,
                "aggregate",
                key,
                |v, e| values::version(v, key, e),
            ),
            _ => set(
                errors,
                &mut krate,
                value,
                "aggregate",
                key,
                values::crate_path,
            ),
        };
        let mut arg_errors = Errors::default();
        let result = syn::meta::parser(each_key("aggregate", KEYS, &mut arg_errors, &mut on_key))
            .parse2(args);
        let had_errors = !arg_errors.is_empty();
        errors.extend(arg_errors);
        if let Err(error) = result {
            errors.push(error);
            return None;
        }
        let Some(name) = name else {
            if !had_errors {
                errors.push(syn::Error::new(
                    Span::call_site(),
                    "#[aggregate] needs the aggregate type name: #[aggregate(name = \"Account\")]",
                ));
            }
            return None;
        };
        Some(AggregateArgs {
            name,
            snapshot_version: snapshot_version.map_or(1, |(v, _)| v),
            krate: krate.unwrap_or_else(values::default_crate),
        })
    }
}
