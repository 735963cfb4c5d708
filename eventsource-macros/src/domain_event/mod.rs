//! `#[derive(DomainEvent)]`: parse the input and its `#[event(...)]` attributes, validate
//! the shape, then expand to the trait impl and the registry entry.

mod attr;
mod expand;
mod shape;
mod variants;

use proc_macro2::TokenStream;
use syn::{Data, DeriveInput, Fields};

use crate::errors::{with_fallback, Errors};

pub(crate) fn expand(input: &DeriveInput) -> TokenStream {
    if let Err(error) = validate_shape(input) {
        // Without a usable shape there is nothing sensible to implement.
        return error.into_compile_error();
    }
    let attrs = match attr::EventAttrs::parse(input) {
        Ok(attrs) => attrs,
        Err(error) => return with_fallback(error, expand::fallback(input)),
    };
    match &input.data {
        // An enum without a `name` of its own: one stored event type per variant.
        Data::Enum(data) if attrs.name.is_none() => {
            if let Err(error) = per_variant_attrs(&attrs) {
                return with_fallback(error, expand::fallback(input));
            }
            match variants::parse(input, data) {
                Ok(variants) => variants::derive(input, &attrs, &variants),
                Err(error) => with_fallback(error, expand::fallback(input)),
            }
        }
        Data::Enum(data) => match one_type_enum(input, data) {
            Ok(()) => expand::derive(input, &attrs),
            Err(error) => with_fallback(error, expand::fallback(input)),
        },
        _ => expand::derive(input, &attrs),
    }
}

/// Keys an enum stored per variant cannot take: its variants keep their names across
/// versions (so no `renamed_from`), and each is JSON of its own (so no `previous_json`).
fn per_variant_attrs(attrs: &attr::EventAttrs) -> syn::Result<()> {
    let mut errors = Errors::default();
    if let Some(old) = &attrs.renamed_from {
        errors.spanned(
            old,
            "`renamed_from` is for event structs: the variants of an enum stored per variant \
             keep their names across versions (rename a variant with #[event(name = ...)] to \
             keep its stored name)",
        );
    }
    if let Some(function) = &attrs.previous_json {
        errors.spanned(
            function,
            "`previous_json` is for event structs; an enum stored per variant names its \
             previous version as an enum: `previous = OldEnum` with `From<OldEnum>`",
        );
    }
    errors.finish()
}

/// An enum stored as one event type (it has a `name`): its JSON must be an object, so
/// a unit variant under serde's default tagging (stored as a bare string) is refused,
/// and `#[event(name)]` on variants means nothing.
fn one_type_enum(input: &DeriveInput, data: &syn::DataEnum) -> syn::Result<()> {
    let mut errors = Errors::default();
    let serde = shape::Serde::of(&input.attrs);
    for variant in &data.variants {
        if let Some(attr) = variant.attrs.iter().find(|a| a.path().is_ident("event")) {
            errors.spanned(
                attr,
                "#[event] on a variant names it in an enum stored per variant; this enum has \
                 a `name` and is stored as one event type",
            );
        }
        if matches!(variant.fields, Fields::Unit) && serde.tag.is_none() && !serde.untagged {
            errors.spanned(
                &variant.ident,
                "with serde's default tagging this unit variant is stored as a bare string, \
                 not a JSON object: add #[serde(tag = \"...\")] to the enum, or drop the \
                 enum's `name` to store each variant as its own event type",
            );
        }
    }
    errors.finish()
}

/// The type must be a non-generic struct or enum.
fn validate_shape(input: &DeriveInput) -> syn::Result<()> {
    let mut errors = Errors::default();
    if let Data::Union(data) = &input.data {
        errors.spanned(
            data.union_token,
            "DomainEvent cannot be derived for unions; use a struct or an enum",
        );
    }
    if !input.generics.params.is_empty() {
        errors.spanned(
            &input.generics,
            "DomainEvent cannot be derived for generic types: the registry maps each event name to one \
             concrete type; define a concrete event type (or a type alias wrapper) per instantiation",
        );
    }
    // Payloads are JSON objects (what eventsource-py and most tools expect).
    if let Data::Struct(data) = &input.data {
        match &data.fields {
            Fields::Unit => errors.spanned(
                &input.ident,
                "an event's payload is a JSON object, and a unit struct is stored as `null`: \
                 write `struct Name {}`",
            ),
            Fields::Unnamed(fields) if fields.unnamed.len() != 1 => errors.spanned(
                &data.fields,
                "an event's payload is a JSON object, and a tuple struct is stored as an array: \
                 give the struct named fields (a one-field tuple struct holding a struct is fine)",
            ),
            _ => {}
        }
    }
    errors.finish()
}
