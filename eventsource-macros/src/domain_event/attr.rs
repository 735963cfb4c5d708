//! Parsing and validation of `#[event(name = "...", aggregate = "...", version = N,
//! previous = Type, upcast = "from" | "try_from", crate = "path")]`.
//!
//! Accepted forms: any number of `#[event(...)]` attributes, each a comma-separated list
//! of the keys above, each key at most once overall. Every mistake is reported, spanned
//! on the offending key or value.

use proc_macro2::Span;
use syn::{DeriveInput, LitStr, Path};

use crate::errors::Errors;
use crate::values::{self, each_key, set};

const KEYS: &[&str] = &[
    "name",
    "aggregate",
    "version",
    "previous",
    "upcast",
    "renamed_from",
    "previous_json",
    "crate",
];

/// How a type is made from its previous version's.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upcast {
    /// `From<Previous>`.
    From,
    /// `TryFrom<Previous>`, whose error becomes the row's.
    TryFrom,
}

/// The validated attributes of an event type.
pub(crate) struct EventAttrs {
    pub(crate) name: Option<LitStr>,
    pub(crate) aggregate: Option<LitStr>,
    pub(crate) version: u32,
    /// The previous version's type, and how to convert from it.
    pub(crate) previous: Option<(Path, Upcast)>,
    /// The name the previous version is stored under, when the event was renamed.
    pub(crate) renamed_from: Option<LitStr>,
    /// A function from the previous version's JSON to this version's, for a previous
    /// version without a Rust type.
    pub(crate) previous_json: Option<Path>,
    pub(crate) krate: Path,
}

impl EventAttrs {
    pub(crate) fn parse(input: &DeriveInput) -> syn::Result<Self> {
        let mut errors = Errors::default();
        let mut name: Option<LitStr> = None;
        let mut aggregate: Option<LitStr> = None;
        let mut version: Option<(u32, Span)> = None;
        let mut krate: Option<Path> = None;
        let mut previous: Option<Path> = None;
        let mut upcast: Option<(Upcast, Span)> = None;
        let mut renamed_from: Option<LitStr> = None;
        let mut previous_json: Option<Path> = None;
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
            "previous" => set(errors, &mut previous, value, "event", key, previous_type),
            "upcast" => set(errors, &mut upcast, value, "event", key, upcast_kind),
            "renamed_from" => set(errors, &mut renamed_from, value, "event", key, |v, e| {
                values::name(v, key, e)
            }),
            "previous_json" => set(errors, &mut previous_json, value, "event", key, upcaster_fn),
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
        if let (Some(path), Some((1, span))) = (&previous, version) {
            let _ = path;
            errors.push(syn::Error::new(
                span,
                "version 1 has no previous version; give this type a later version, \
                 e.g. version = 2",
            ));
        }
        if let (None, None, Some(old)) = (&previous, &previous_json, &renamed_from) {
            errors.spanned(
                old,
                "`renamed_from` needs `previous = Type` (or `previous_json = function`), the \
                 version stored under the old name",
            );
        }
        if let (Some(_), Some(f)) = (&previous, &previous_json) {
            errors.spanned(
                f,
                "give the previous version either as a type (`previous`) or as JSON \
                 (`previous_json`), not both",
            );
        }
        if let (Some(f), Some((1, _)) | None) = (&previous_json, version) {
            errors.spanned(
                f,
                "`previous_json` upcasts from version N - 1: give this type `version = N` (N > 1)",
            );
        }
        if let (Some(_), Some((_, span))) = (&previous_json, upcast) {
            errors.push(syn::Error::new(
                span,
                "`upcast` is for `previous = Type`; a `previous_json` function returns a Result",
            ));
        }
        if let (None, Some((_, span))) = (&previous, upcast) {
            errors.push(syn::Error::new(
                span,
                "`upcast` needs `previous = Type`, the version it converts from",
            ));
        }
        if let (Some(path), None) = (&previous, version) {
            errors.spanned(
                path,
                "a type with a `previous` version needs its own `version = N` (N > 1)",
            );
        }
        errors.finish()?;
        Ok(EventAttrs {
            name,
            aggregate,
            version: version.map_or(1, |(v, _)| v),
            previous: previous.map(|p| (p, upcast.map_or(Upcast::From, |(u, _)| u))),
            renamed_from,
            previous_json,
            krate: krate.unwrap_or_else(values::default_crate),
        })
    }
}

/// `previous = Type`: a path to the previous version's type.
fn previous_type(value: &syn::Expr, errors: &mut Errors) -> Option<Path> {
    match value {
        syn::Expr::Path(path) if path.qself.is_none() => Some(path.path.clone()),
        _ => {
            errors.spanned(
                value,
                "`previous` must be the previous version's type, e.g. previous = BookAddedV1",
            );
            None
        }
    }
}

/// `upcast = "from"` or `upcast = "try_from"`.
fn upcast_kind(value: &syn::Expr, errors: &mut Errors) -> Option<(Upcast, Span)> {
    let text = values::name(value, "upcast", errors)?;
    match text.value().as_str() {
        "from" => Some((Upcast::From, text.span())),
        "try_from" => Some((Upcast::TryFrom, text.span())),
        _ => {
            errors.spanned(
                &text,
                "`upcast` is \"from\" (a `From<Previous>` impl, the default) or \"try_from\" \
                 (a `TryFrom<Previous>` impl whose error is shown)",
            );
            None
        }
    }
}

/// `previous_json = function`: a path to `fn(serde_json::Value) -> Result<serde_json::Value, E>`.
fn upcaster_fn(value: &syn::Expr, errors: &mut Errors) -> Option<Path> {
    match value {
        syn::Expr::Path(path) if path.qself.is_none() => Some(path.path.clone()),
        _ => {
            errors.spanned(
                value,
                "`previous_json` must name a function `fn(serde_json::Value) -> Result<serde_json::Value, E>`",
            );
            None
        }
    }
}
