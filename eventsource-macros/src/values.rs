//! Parsing of `key = value` attribute arguments shared by every macro: unknown keys,
//! missing values, wrong literal types and empty strings are reported on the user's
//! tokens, and parsing goes on so every mistake shows in one compile.

use proc_macro2::Span;
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::{Expr, ExprLit, Lit, LitInt, LitStr, Path};

use crate::errors::Errors;

/// A handler for `parse_nested_meta` / `syn::meta::parser` that accepts `key = <expr>`
/// for each of `keys` and hands it to `on_key`; anything else is reported.
pub(crate) fn each_key<'a>(
    attribute: &'a str,
    keys: &'a [&'static str],
    errors: &'a mut Errors,
    on_key: &'a mut dyn FnMut(&'static str, &Expr, &mut Errors),
) -> impl FnMut(ParseNestedMeta<'_>) -> syn::Result<()> + 'a {
    move |meta| {
        let Some(key) = keys.iter().copied().find(|k| meta.path.is_ident(k)) else {
            let shown = meta.path.to_token_stream().to_string().replace(' ', "");
            let expected = keys
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ");
            errors.spanned(
                &meta.path,
                format!("unknown {attribute} attribute `{shown}`; expected one of {expected}"),
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
            errors.spanned(&meta.path, format!("expected `{key} = ...`"));
            return Ok(());
        }
        let value: Expr = meta.value()?.parse()?;
        on_key(key, &value, errors);
        Ok(())
    }
}

/// Stores a parsed value, reporting a key given twice on its second occurrence.
pub(crate) fn set<T>(
    errors: &mut Errors,
    slot: &mut Option<T>,
    value: &Expr,
    attribute: &str,
    key: &str,
    parse: impl FnOnce(&Expr, &mut Errors) -> Option<T>,
) {
    let parsed = parse(value, errors);
    if slot.is_some() {
        errors.spanned(value, format!("duplicate `{key}` in #[{attribute}(...)]"));
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

/// A string literal that is not empty and has no surrounding whitespace.
pub(crate) fn name(value: &Expr, key: &str, errors: &mut Errors) -> Option<LitStr> {
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

/// An unsuffixed integer literal from 1 to `u32::MAX`.
pub(crate) fn version(value: &Expr, key: &str, errors: &mut Errors) -> Option<(u32, Span)> {
    let Expr::Lit(ExprLit {
        lit: Lit::Int(int), ..
    }) = value
    else {
        errors.spanned(
            value,
            format!("`{key}` must be an integer literal, e.g. {key} = 2"),
        );
        return None;
    };
    match parse_u32(int, key) {
        Ok(0) => {
            errors.spanned(int, format!("`{key}` starts at 1"));
            None
        }
        Ok(v) => Some((v, int.span())),
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

fn parse_u32(int: &LitInt, key: &str) -> syn::Result<u32> {
    if !int.suffix().is_empty() && int.suffix() != "u32" {
        return Err(syn::Error::new_spanned(
            int,
            format!("`{key}` takes an unsuffixed integer, e.g. {key} = 2"),
        ));
    }
    int.base10_parse::<u32>()
        .map_err(|_| syn::Error::new_spanned(int, format!("`{key}` must fit in a u32")))
}

/// A boolean literal: `key = true` or `key = false`.
pub(crate) fn boolean(value: &Expr, key: &str, errors: &mut Errors) -> Option<bool> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => Some(b.value),
        _ => {
            errors.spanned(
                value,
                format!("`{key}` must be `true` or `false`, e.g. {key} = true"),
            );
            None
        }
    }
}

/// `crate = "path"`: where the `eventsource` crate is.
pub(crate) fn crate_path(value: &Expr, errors: &mut Errors) -> Option<Path> {
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

/// The default runtime path.
pub(crate) fn default_crate() -> Path {
    syn::parse_quote!(::eventsource)
}
