//! Parsing and validation of `#[event(name = "...", aggregate = "...", version = N,
//! crate = "path")]`.
//!
//! Accepted forms: any number of `#[event(...)]` attributes, each a comma-separated list
//! of the keys above, each key at most once overall. Every mistake is reported, spanned
//! on the offending key or value.

use proc_macro2::Span;
use quote::ToTokens;
use syn::{Attribute, DeriveInput, Expr, ExprLit, Lit, LitInt, LitStr, Path};

use crate::errors::Errors;

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
        for attr in input.attrs.iter().filter(|a| a.path().is_ident("event")) {
            parse_one(attr, &mut errors, &mut |key, value, errors| match key {
                Key::Name => set(errors, &mut name, value, "name", |v, e| {
                    non_empty_str(v, "name", e)
                }),
                Key::Aggregate => set(errors, &mut aggregate, value, "aggregate", |v, e| {
                    non_empty_str(v, "aggregate", e)
                }),
                Key::Version => set(errors, &mut version, value, "version", version_value),
                Key::Crate => set(errors, &mut krate, value, "crate", crate_path),
            });
        }
        errors.finish()?;
        Ok(EventAttrs {
            name,
            aggregate,
            version: version.map_or(1, |(v, _)| v),
            krate: krate.unwrap_or_else(|| syn::parse_quote!(::eventsource)),
        })
    }
}

#[derive(Clone, Copy)]
enum Key {
    Name,
    Aggregate,
    Version,
    Crate,
}

/// Parses one `#[event(...)]`, handing each `key = value` to `on_key`.
fn parse_one(
    attr: &Attribute,
    errors: &mut Errors,
    on_key: &mut dyn FnMut(Key, &Expr, &mut Errors),
) {
    let result = attr.parse_nested_meta(|meta| {
        let key = if meta.path.is_ident("name") {
            Some(Key::Name)
        } else if meta.path.is_ident("aggregate") {
            Some(Key::Aggregate)
        } else if meta.path.is_ident("version") {
            Some(Key::Version)
        } else if meta.path.is_ident("crate") {
            Some(Key::Crate)
        } else {
            None
        };
        let Some(key) = key else {
            let shown = meta.path.to_token_stream().to_string().replace(' ', "");
            errors.spanned(
                &meta.path,
                format!("unknown event attribute `{shown}`; expected `name`, `aggregate`, `version` or `crate`"),
            );
            // Skip the value so the remaining keys are still checked.
            if meta.input.peek(syn::Token![=]) {
                let _: Expr = meta.value()?.parse()?;
            } else if meta.input.peek(syn::token::Paren) {
                meta.parse_nested_meta(|inner| {
                    if inner.input.peek(syn::Token![=]) {
                        let _: Expr = inner.value()?.parse()?;
                    }
                    Ok(())
                })?;
            }
            return Ok(());
        };
        if !meta.input.peek(syn::Token![=]) {
            let shown = meta.path.to_token_stream().to_string();
            errors.spanned(&meta.path, format!("expected `{shown} = ...`"));
            return Ok(());
        }
        let value: Expr = meta.value()?.parse()?;
        on_key(key, &value, errors);
        Ok(())
    });
    if let Err(error) = result {
        errors.push(error);
    }
}

/// Stores a parsed value, reporting a key given twice on its second occurrence.
fn set<T>(
    errors: &mut Errors,
    slot: &mut Option<T>,
    value: &Expr,
    key: &str,
    parse: impl FnOnce(&Expr, &mut Errors) -> Option<T>,
) {
    let parsed = parse(value, errors);
    if slot.is_some() {
        errors.spanned(value, format!("duplicate `{key}` in #[event(...)]"));
        return;
    }
    if let Some(parsed) = parsed {
        *slot = Some(parsed);
    }
}

fn lit_str<'a>(value: &'a Expr, key: &str, errors: &mut Errors) -> Option<&'a LitStr> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(s),
        _ => {
            errors.spanned(
                value,
                format!("`{key}` must be a string literal, e.g. {key} = \"...\""),
            );
            None
        }
    }
}

fn non_empty_str(value: &Expr, key: &str, errors: &mut Errors) -> Option<LitStr> {
    let s = lit_str(value, key, errors)?;
    let text = s.value();
    if text.trim().is_empty() {
        errors.spanned(s, format!("`{key}` must not be empty"));
        return None;
    }
    if text.trim() != text {
        errors.spanned(s, format!("`{key}` must not start or end with whitespace"));
        return None;
    }
    Some(s.clone())
}

fn version_value(value: &Expr, errors: &mut Errors) -> Option<(u32, Span)> {
    let Expr::Lit(ExprLit {
        lit: Lit::Int(int), ..
    }) = value
    else {
        errors.spanned(
            value,
            "`version` must be an integer literal, e.g. version = 2",
        );
        return None;
    };
    let parsed = parse_version(int);
    match parsed {
        Ok(0) => {
            errors.spanned(int, "event versions start at 1");
            None
        }
        Ok(v) => Some((v, int.span())),
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

fn parse_version(int: &LitInt) -> syn::Result<u32> {
    if !int.suffix().is_empty() && int.suffix() != "u32" {
        return Err(syn::Error::new_spanned(
            int,
            "`version` takes an unsuffixed integer, e.g. version = 2",
        ));
    }
    int.base10_parse::<u32>()
        .map_err(|_| syn::Error::new_spanned(int, "`version` must fit in a u32"))
}

fn crate_path(value: &Expr, errors: &mut Errors) -> Option<Path> {
    let s = lit_str(value, "crate", errors)?;
    match s.parse::<Path>() {
        Ok(path) => Some(path),
        Err(_) => {
            errors.spanned(
                s,
                "`crate` must be a path, e.g. crate = \"::my_app::eventsource\"",
            );
            None
        }
    }
}
