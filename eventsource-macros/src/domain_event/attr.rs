//! Parsing and validation of `#[event(name = "...", aggregate = "...", version = N,
//! crate = "path")]`.
//!
//! Accepted forms: any number of `#[event(...)]` attributes, each a comma-separated list
//! of the keys above, each key at most once overall. Every mistake is reported, spanned
//! on the offending key or value.

use proc_macro2::Span;
use syn::{DeriveInput, LitStr, Path};

use crate::errors::Errors;
use crate::values::{self, each_key, set};

const KEYS: &[&str] = &["name", "aggregate", "version", "crate"];

/// The validated attributes of an event type.
pub(crate) struct EventAttrs {
    pub(crate) name: Option<LitStr>,
    pub(crate) aggregate: Option<LitStr>,
    pub(crate) version: u32,
    pub(crate) krate: Path,
}

impl EventAttrs {
    pub(crate) fn parse(input: &DeriveInput) -> syn::Result<Self> {
        let mut errors = Errors::default();
        let mut name: Option<LitStr> = None;
        let mut aggregate: Option<LitStr> = None;
        let mut version: Option<(u32, Span)> = None;
        let mut krate: Option<Path> = None;
        let mut on_key = |key: &'static str, value: &syn::Expr, errors: &mut Errors| match key {
            "name" => set(errors, &mut name, value, "event", key, |v, e| {
                values::name(v, key, e)
            }),
            "aggregate" => set(errors, &mut aggregate, value, "event", key, |v, e| {
                values::name(v, key, e)
            }),
            "version" => set(errors, &mut version, value, "event", key, |v, e| {
                values::version(v, key, e)
            }),
            _ => set(errors, &mut krate, value, "event", key, values::crate_path),
        };
        for attr in input.attrs.iter().filter(|a| a.path().is_ident("event")) {
            let mut attr_errors = Errors::default();
            let result =
                attr.parse_nested_meta(each_key("event", KEYS, &mut attr_errors, &mut on_key));
            errors.extend(attr_errors);
            if let Err(error) = result {
                errors.push(error);
            }
        }
        errors.finish()?;
        Ok(EventAttrs {
            name,
            aggregate,
            version: version.map_or(1, |(v, _)| v),
            krate: krate.unwrap_or_else(values::default_crate),
        })
    }
}
