//! `#[derive(DomainEvent)]`: parse the input and its `#[event(...)]` attributes, validate
//! the shape, then expand to the trait impl and the registry entry.

mod attr;
mod expand;
mod shape;

use proc_macro2::TokenStream;
use syn::{Data, DeriveInput};

use crate::errors::{with_fallback, Errors};

pub(crate) fn expand(input: &DeriveInput) -> TokenStream {
    if let Err(error) = validate_shape(input) {
        // Without a usable shape there is nothing sensible to implement.
        return error.into_compile_error();
    }
    let attrs = attr::EventAttrs::parse(input);
    match attrs {
        Ok(attrs) => expand::derive(input, &attrs),
        Err(error) => with_fallback(error, expand::fallback(input)),
    }
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
    errors.finish()
}
