//! The payload shape of an event type, as its serde JSON form reads it: field names
//! (after `rename` and `rename_all`), their Rust types as written, and which are
//! optional. `events.lock` records it per type and version, and the lock check compares
//! it with the shape of the code.
//!
//! Grammar: `{a: T, b?: Option<U>}` for named fields sorted by name (`?`: the field may
//! be missing from stored JSON: an `Option`, or `#[serde(default)]`; `..T`: flattened),
//! prefixed `strict ` under `deny_unknown_fields`; `(T, U)` for tuple structs; `()` for
//! unit structs; `enum {A, B(T), C {x: T}}` for enums.

use quote::ToTokens;
use syn::{Attribute, Data, DeriveInput, Fields, LitStr, Type};

/// Serde's attributes that change what JSON a type reads.
#[derive(Default)]
pub(super) struct Serde {
    rename: Option<String>,
    rename_all: Option<String>,
    default: bool,
    pub(super) skip: bool,
    flatten: bool,
    deny_unknown_fields: bool,
    /// `tag = "..."`: internally (or, with `content`, adjacently) tagged.
    pub(super) tag: Option<String>,
    pub(super) content: bool,
    pub(super) untagged: bool,
}

impl Serde {
    /// The `#[serde(...)]` attributes of `attrs`; keys it does not need are passed over.
    pub(super) fn of(attrs: &[Attribute]) -> Self {
        let mut serde = Serde::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
            let _ = attr.parse_nested_meta(|meta| {
                let key = meta.path.get_ident().map(ToString::to_string);
                match key.as_deref() {
                    Some("rename") => serde.rename = deserialize_name(&meta)?,
                    Some("rename_all") => serde.rename_all = deserialize_name(&meta)?,
                    Some("default") => {
                        serde.default = true;
                        skip_value(&meta)?;
                    }
                    Some("skip" | "skip_deserializing") => serde.skip = true,
                    Some("flatten") => serde.flatten = true,
                    Some("deny_unknown_fields") => serde.deny_unknown_fields = true,
                    Some("tag") => {
                        let tag: LitStr = meta.value()?.parse()?;
                        serde.tag = Some(tag.value());
                    }
                    Some("content") => {
                        serde.content = true;
                        skip_value(&meta)?;
                    }
                    Some("untagged") => serde.untagged = true,
                    _ => skip_value(&meta)?,
                }
                Ok(())
            });
        }
        serde
    }
}

/// `key = "x"`, or `key(deserialize = "x", ...)`: the name JSON is read with.
fn deserialize_name(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<Option<String>> {
    if meta.input.peek(syn::Token![=]) {
        let name: LitStr = meta.value()?.parse()?;
        return Ok(Some(name.value()));
    }
    let mut found = None;
    if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|inner| {
            let name: LitStr = inner.value()?.parse()?;
            if inner.path.is_ident("deserialize") {
                found = Some(name.value());
            }
            Ok(())
        })?;
    }
    Ok(found)
}

fn skip_value(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        let _: syn::Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|inner| skip_value(&inner))?;
    }
    Ok(())
}

/// `name` as serde's `rename_all = rule` spells it.
fn renamed(name: &str, rule: Option<&str>) -> String {
    let words: Vec<String> = split_words(name);
    let join =
        |sep: &str, f: fn(&str) -> String| words.iter().map(|w| f(w)).collect::<Vec<_>>().join(sep);
    let capital = |w: &str| {
        let mut chars = w.chars();
        chars
            .next()
            .map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
    };
    match rule {
        Some("lowercase") => name.to_lowercase(),
        Some("UPPERCASE") => name.to_uppercase(),
        Some("PascalCase") => words.iter().map(|w| capital(w)).collect(),
        Some("camelCase") => {
            let pascal: String = words.iter().map(|w| capital(w)).collect();
            let mut chars = pascal.chars();
            chars
                .next()
                .map_or_else(String::new, |c| c.to_lowercase().chain(chars).collect())
        }
        Some("snake_case") => join("_", str::to_owned),
        Some("SCREAMING_SNAKE_CASE") => join("_", str::to_uppercase),
        Some("kebab-case") => join("-", str::to_owned),
        Some("SCREAMING-KEBAB-CASE") => join("-", str::to_uppercase),
        _ => name.to_owned(),
    }
}

/// The lowercase words of a snake_case field or PascalCase variant name.
fn split_words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    for c in name.chars() {
        if c == '_' {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
        } else if c.is_uppercase() && !word.is_empty() {
            words.push(std::mem::take(&mut word));
            word.extend(c.to_lowercase());
        } else {
            word.extend(c.to_lowercase());
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

fn type_text(ty: &Type) -> String {
    ty.to_token_stream().to_string().replace(' ', "")
}

fn is_option(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none()
        && p.path.segments.last().is_some_and(|s| s.ident == "Option"))
}

/// The shape of `fields` under the container's attributes `outer`.
fn fields_shape(fields: &Fields, outer: &Serde) -> String {
    match fields {
        Fields::Named(named) => {
            let mut parts: Vec<String> = named
                .named
                .iter()
                .filter_map(|field| {
                    let serde = Serde::of(&field.attrs);
                    if serde.skip {
                        return None;
                    }
                    let ty = type_text(&field.ty);
                    if serde.flatten {
                        return Some(format!("..{ty}"));
                    }
                    let ident = field
                        .ident
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default();
                    let ident = ident.strip_prefix("r#").unwrap_or(&ident).to_owned();
                    let name = serde
                        .rename
                        .unwrap_or_else(|| renamed(&ident, outer.rename_all.as_deref()));
                    let optional = serde.default || outer.default || is_option(&field.ty);
                    Some(format!("{name}{}: {ty}", if optional { "?" } else { "" }))
                })
                .collect();
            parts.sort();
            let strict = if outer.deny_unknown_fields {
                "strict "
            } else {
                ""
            };
            format!("{strict}{{{}}}", parts.join(", "))
        }
        Fields::Unnamed(unnamed) => {
            let parts: Vec<String> = unnamed.unnamed.iter().map(|f| type_text(&f.ty)).collect();
            format!("({})", parts.join(", "))
        }
        Fields::Unit => "()".to_owned(),
    }
}

/// The name serde gives `variant` under the enum's attributes `outer`.
pub(super) fn variant_name(variant: &syn::Variant, outer: &Serde) -> String {
    Serde::of(&variant.attrs)
        .rename
        .unwrap_or_else(|| renamed(&variant.ident.to_string(), outer.rename_all.as_deref()))
}

/// The payload shape of one variant of an enum stored per variant.
pub(super) fn variant_shape(variant: &syn::Variant) -> String {
    match &variant.fields {
        Fields::Unit => "{}".to_owned(),
        fields => fields_shape(fields, &Serde::of(&variant.attrs)),
    }
}

/// The payload shape of `input` (see the module documentation).
pub(super) fn of(input: &DeriveInput) -> String {
    let outer = Serde::of(&input.attrs);
    match &input.data {
        Data::Struct(data) => fields_shape(&data.fields, &outer),
        Data::Enum(data) => {
            let variants: Vec<String> = data
                .variants
                .iter()
                .filter_map(|variant| {
                    let serde = Serde::of(&variant.attrs);
                    if serde.skip {
                        return None;
                    }
                    let name = serde.rename.unwrap_or_else(|| {
                        renamed(&variant.ident.to_string(), outer.rename_all.as_deref())
                    });
                    Some(match &variant.fields {
                        Fields::Unit => name,
                        fields => format!("{name}{}", fields_shape(fields, &Serde::default())),
                    })
                })
                .collect();
            format!("enum {{{}}}", variants.join(", "))
        }
        Data::Union(_) => String::new(),
    }
}
