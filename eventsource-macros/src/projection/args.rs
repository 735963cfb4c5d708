//! The arguments of `#[projection(name = "TaskList", durable = true, crate = "...")]`:
//! all optional; `name` defaults to the type's name, `durable` to `false`.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::{LitStr, Path};

use crate::errors::Errors;
use crate::values::{self, each_key, set};

const KEYS: &[&str] = &["name", "durable", "crate"];

pub(super) struct ProjectionArgs {
    pub(super) name: Option<LitStr>,
    /// The read model outlives the process (`Projection::is_durable`).
    pub(super) durable: bool,
    pub(super) krate: Path,
}

impl ProjectionArgs {
    /// The arguments, or `None` after reporting what is wrong with them.
    pub(super) fn parse(args: TokenStream, errors: &mut Errors) -> Option<Self> {
        let mut name: Option<LitStr> = None;
        let mut krate: Option<Path> = None;
        let mut durable: Option<bool> = None;
        let mut on_key = |key: &'static str, value: &syn::Expr, errors: &mut Errors| match key {
            "name" => set(errors, &mut name, value, "projection", key, |v, e| {
                values::name(v, key, e)
            }),
            "durable" => set(errors, &mut durable, value, "projection", key, |v, e| {
                values::boolean(v, key, e)
            }),
            _ => set(
                errors,
                &mut krate,
                value,
                "projection",
                key,
                values::crate_path,
            ),
        };
        let mut arg_errors = Errors::default();
        let result = syn::meta::parser(each_key("projection", KEYS, &mut arg_errors, &mut on_key))
            .parse2(args);
        let ok = arg_errors.is_empty();
        errors.extend(arg_errors);
        if let Err(error) = result {
            errors.push(error);
            return None;
        }
        ok.then(|| ProjectionArgs {
            name,
            durable: durable.unwrap_or(false),
            krate: krate.unwrap_or_else(values::default_crate),
        })
    }
}
