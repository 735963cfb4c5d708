//! Code generation for `#[derive(DomainEvent)]`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{DeriveInput, LitStr};

use super::attr::EventAttrs;

/// The `DomainEvent` impl plus an `inventory` registration, inside `const _: () = {...}`
/// so no helper name leaks into the user's module.
pub(super) fn derive(input: &DeriveInput, attrs: &EventAttrs) -> TokenStream {
    let ident = &input.ident;
    let krate = &attrs.krate;
    let name = attrs
        .name
        .clone()
        .unwrap_or_else(|| LitStr::new(&ident.to_string(), ident.span()));
    let aggregate = match &attrs.aggregate {
        Some(aggregate) => quote!(::core::option::Option::Some(#aggregate)),
        None => quote!(::core::option::Option::None),
    };
    let version = attrs.version;
    let type_name = ident.to_string();
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #krate::DomainEvent for #ident {
                const EVENT_TYPE: &'static str = #name;
                const AGGREGATE_TYPE: ::core::option::Option<&'static str> = #aggregate;
                const VERSION: u32 = #version;
            }

            #krate::__private::inventory::submit! {
                #krate::__private::EventRegistration::of::<#ident>(
                    ::core::concat!(::core::module_path!(), "::", #type_name)
                )
            }
        };
    }
}

/// After an attribute error: the impl with default values and no registration, so the
/// rest of the user's crate keeps type-checking.
pub(super) fn fallback(input: &DeriveInput) -> TokenStream {
    let ident = &input.ident;
    let name = ident.to_string();
    quote! {
        #[automatically_derived]
        impl ::eventsource::DomainEvent for #ident {
            const EVENT_TYPE: &'static str = #name;
            const AGGREGATE_TYPE: ::core::option::Option<&'static str> = ::core::option::Option::None;
            const VERSION: u32 = 1;
        }
    }
}
