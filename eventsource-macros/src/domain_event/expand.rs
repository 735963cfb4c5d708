//! Code generation for `#[derive(DomainEvent)]`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, LitStr};

use super::attr::{EventAttrs, Upcast};

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
    let shape = super::shape::of(input);
    let type_path = quote!(::core::concat!(::core::module_path!(), "::", #type_name));
    // Spanned on `previous = Type`, so a missing `From` impl or a previous type of
    // another name or a later version is reported there.
    let (registration, checks) = match (&attrs.previous, &attrs.previous_json) {
        (None, None) => (
            quote!(#krate::__private::EventRegistration::of::<#ident>(#type_path)),
            quote!(),
        ),
        // A previous version without a Rust type: its JSON goes through the user's
        // function, spanned on it (a wrong signature is reported there).
        (None, Some(upcaster)) => {
            let span = upcaster.span();
            let from_version = attrs.version.saturating_sub(1);
            let from_name = match &attrs.renamed_from {
                Some(old) => quote!(#old),
                None => quote!(#name),
            };
            let from_text = from_version.to_string();
            let input_path = quote!(::core::concat!(
                ::core::module_path!(), "::", #type_name, " (its v", #from_text, " JSON)"
            ));
            (
                quote_spanned! {span=>
                    #krate::__private::EventRegistration::of_json_upcast::<#ident>(
                        #type_path, #from_name, #from_version, __eventsource_json_hop,
                    )
                },
                quote_spanned! {span=>
                    fn __eventsource_json_hop(
                        value: #krate::__private::Owned,
                    ) -> ::core::result::Result<#krate::__private::Owned, ::std::string::String> {
                        #krate::__private::json_hop::<#ident, _>(value, #upcaster)
                    }

                    #krate::__private::inventory::submit! {
                        #krate::__private::EventRegistration::json_input(
                            #from_name, #from_version, #input_path,
                        )
                    }
                },
            )
        }
        (Some((previous, upcast)), _) => {
            let span = previous.span();
            let constructor = match upcast {
                Upcast::From => quote_spanned!(span=> of_upcast),
                Upcast::TryFrom => quote_spanned!(span=> of_try_upcast),
            };
            // The previous version is stored under this name, or the one it was renamed
            // from.
            let (stored_name, name_message) = match &attrs.renamed_from {
                Some(old) => (
                    quote!(#old),
                    "`previous` is not stored under the `renamed_from` name: give the previous type that `name`",
                ),
                None => (
                    quote!(<#ident as #krate::DomainEvent>::EVENT_TYPE),
                    "`previous` names a type stored under another event name: give both the same `name`, or say `renamed_from = \"<old name>\"`",
                ),
            };
            // The type itself, spanned on `previous` too: a missing hop is reported there.
            let this = syn::Ident::new(&ident.to_string(), span);
            (
                quote_spanned! {span=>
                    #krate::__private::EventRegistration::#constructor::<#this, #previous>(#type_path)
                },
                quote_spanned! {span=>
                    const _: () = ::core::assert!(
                        #krate::__private::same_name(
                            <#previous as #krate::DomainEvent>::EVENT_TYPE,
                            #stored_name,
                        ),
                        #name_message,
                    );
                    const _: () = ::core::assert!(
                        <#previous as #krate::DomainEvent>::VERSION < <#ident as #krate::DomainEvent>::VERSION,
                        "`previous` must name an earlier version of this event",
                    );
                    // The previous version's type must be in this crate.
                    impl #krate::__private::Superseded for #previous {}
                },
            )
        }
    };
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #krate::DomainEvent for #ident {
                const EVENT_TYPE: &'static str = #name;
                const AGGREGATE_TYPE: ::core::option::Option<&'static str> = #aggregate;
                const VERSION: u32 = #version;
                const SHAPE: &'static str = #shape;
            }

            #checks

            #krate::__private::inventory::submit! {
                #registration
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
