//! Enums stored per variant: each variant is its own stored event type (named by its
//! `#[event(name = "...")]`, or the variant's name), its payload the variant's fields as a
//! JSON object, decoded back to the enum. The default for an enum without a container
//! `name` (with one, the enum is stored as one type, as its serde JSON).

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DataEnum, DeriveInput, Fields, LitStr};

use super::attr::{EventAttrs, Upcast};
use super::shape::{self, Serde};
use crate::errors::Errors;
use crate::values::{each_key, set};

/// One variant, as stored.
pub(super) struct Variant {
    ident: syn::Ident,
    /// The stored event type name.
    stored: LitStr,
    /// The name serde gives it (its tag).
    serde_name: String,
    unit: bool,
    shape: String,
}

/// The stored variants of an enum, and those serde skips.
pub(super) struct Variants {
    variants: Vec<Variant>,
    skipped: Vec<syn::Ident>,
}

/// The variants of `data`, or every reason the enum cannot be stored per variant.
pub(super) fn parse(input: &DeriveInput, data: &DataEnum) -> syn::Result<Variants> {
    let mut errors = Errors::default();
    let outer = Serde::of(&input.attrs);
    if outer.untagged || outer.content {
        errors.spanned(
            &input.ident,
            "an enum stored per variant needs serde's default tagging or `#[serde(tag = \"...\")]` \
             (its stored payload is the variant's fields, and the tag its event type); give the \
             enum `#[event(name = \"...\")]` to store it as one event type instead",
        );
    }
    if data.variants.is_empty() {
        errors.spanned(&input.ident, "an event enum needs at least one variant");
    }
    let mut variants: Vec<Variant> = Vec::new();
    let mut skipped = Vec::new();
    for variant in &data.variants {
        let mut name: Option<LitStr> = None;
        for attr in variant.attrs.iter().filter(|a| a.path().is_ident("event")) {
            let mut attr_errors = Errors::default();
            let mut on_key = |key: &'static str, value: &syn::Expr, errors: &mut Errors| {
                set(errors, &mut name, value, "event", key, |v, e| {
                    crate::values::name(v, key, e)
                });
            };
            let result =
                attr.parse_nested_meta(each_key("event", &["name"], &mut attr_errors, &mut on_key));
            errors.extend(attr_errors);
            if let Err(error) = result {
                errors.push(error);
            }
        }
        if let Fields::Unnamed(fields) = &variant.fields {
            if fields.unnamed.len() != 1 {
                errors.spanned(
                    &variant.fields,
                    "a tuple variant's payload is not a JSON object: give the variant named \
                     fields, or one field holding a struct",
                );
            }
        }
        if Serde::of(&variant.attrs).skip {
            // Never serialized nor read (serde refuses to): stored under no name.
            skipped.push(variant.ident.clone());
            continue;
        }
        let stored =
            name.unwrap_or_else(|| LitStr::new(&variant.ident.to_string(), variant.ident.span()));
        if let Some(first) = variants.iter().find(|v| v.stored.value() == stored.value()) {
            errors.spanned(
                &stored,
                format!(
                    "two variants are stored as `{}` (`{}` and `{}`): give one another \
                     #[event(name = \"...\")]",
                    stored.value(),
                    first.ident,
                    variant.ident
                ),
            );
        }
        variants.push(Variant {
            ident: variant.ident.clone(),
            stored,
            serde_name: shape::variant_name(variant, &outer),
            unit: matches!(variant.fields, Fields::Unit),
            shape: shape::variant_shape(variant),
        });
    }
    errors.finish()?;
    Ok(Variants { variants, skipped })
}

/// The `DomainEvent` impl of an enum stored per variant, and a registration per variant.
pub(super) fn derive(input: &DeriveInput, attrs: &EventAttrs, all: &Variants) -> TokenStream {
    let variants = &all.variants;
    let skipped = &all.skipped;
    let ident = &input.ident;
    let krate = &attrs.krate;
    let enum_name = ident.to_string();
    let aggregate = match &attrs.aggregate {
        Some(aggregate) => quote!(::core::option::Option::Some(#aggregate)),
        None => quote!(::core::option::Option::None),
    };
    let version = attrs.version;
    let shape = shape::of(input);
    let tagging = match Serde::of(&input.attrs).tag {
        Some(tag) => quote!(#krate::__private::Tagging::Internal(#tag)),
        None => quote!(#krate::__private::Tagging::External),
    };
    let stored: Vec<&LitStr> = variants.iter().map(|v| &v.stored).collect();
    let arms = variants.iter().map(|v| {
        let (variant, stored) = (&v.ident, &v.stored);
        quote!(#ident::#variant { .. } => #stored)
    });
    let decode_arms = variants.iter().map(|v| {
        let (stored, serde_name, unit) = (&v.stored, &v.serde_name, v.unit);
        quote!(#stored => (#serde_name, #unit))
    });
    let type_path = quote!(::core::concat!(::core::module_path!(), "::", #enum_name));
    let registrations = variants.iter().map(|v| {
        let (stored, shape) = (&v.stored, &v.shape);
        let registration = match &attrs.previous {
            None => quote! {
                #krate::__private::EventRegistration::of_variant::<#ident>(#stored, #type_path, #shape)
            },
            // A variant the previous version had is upcast from its rows; a new one is not.
            Some((previous, upcast)) => {
                let span = previous.span();
                let constructor = match upcast {
                    Upcast::From => quote_spanned!(span=> of_variant_upcast),
                    Upcast::TryFrom => quote_spanned!(span=> of_variant_try_upcast),
                };
                let this = syn::Ident::new(&ident.to_string(), span);
                quote_spanned! {span=>
                    if #krate::__private::names_contain(
                        <#previous as #krate::DomainEvent>::EVENT_TYPES, #stored,
                    ) {
                        #krate::__private::EventRegistration::#constructor::<#this, #previous>(
                            #stored, #type_path, #shape,
                        )
                    } else {
                        #krate::__private::EventRegistration::of_variant::<#ident>(#stored, #type_path, #shape)
                    }
                }
            }
        };
        quote! {
            #krate::__private::inventory::submit! { #registration }
        }
    });
    let checks = attrs.previous.as_ref().map(|(previous, _)| {
        let span = previous.span();
        quote_spanned! {span=>
            const _: () = ::core::assert!(
                <#previous as #krate::DomainEvent>::PER_VARIANT,
                "`previous` of an enum stored per variant must be its previous version: an enum stored per variant",
            );
            const _: () = ::core::assert!(
                <#previous as #krate::DomainEvent>::VERSION < <#ident as #krate::DomainEvent>::VERSION,
                "`previous` must name an earlier version of this event",
            );
            const _: () = ::core::assert!(
                #krate::__private::names_cover(
                    <#ident as #krate::DomainEvent>::EVENT_TYPES,
                    <#previous as #krate::DomainEvent>::EVENT_TYPES,
                ),
                "every variant of the previous version must keep its stored name in this one (its rows are upcast to it): keep the variant, or its #[event(name = ...)]",
            );
            // The previous version's type must be in this crate.
            impl #krate::__private::Superseded for #previous {}
        }
    });
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #krate::DomainEvent for #ident {
                const EVENT_TYPE: &'static str = #enum_name;
                const AGGREGATE_TYPE: ::core::option::Option<&'static str> = #aggregate;
                const VERSION: u32 = #version;
                const SHAPE: &'static str = #shape;
                const EVENT_TYPES: &'static [&'static str] = &[#(#stored),*];
                const PER_VARIANT: bool = true;

                fn stored_type(&self) -> &'static str {
                    match self {
                        #(#arms,)*
                        #(#ident::#skipped { .. } => #enum_name,)*
                    }
                }

                fn to_payload(&self) -> #krate::__private::serde_json::Result<#krate::__private::serde_json::Value> {
                    #krate::__private::variant_payload(self, #tagging)
                }

                fn from_payload(
                    event_type: &str,
                    payload: #krate::__private::serde_json::Value,
                ) -> #krate::__private::serde_json::Result<Self> {
                    let (variant, unit) = match event_type {
                        #(#decode_arms,)*
                        other => return ::core::result::Result::Err(
                            #krate::__private::unknown_variant(other, #enum_name),
                        ),
                    };
                    #krate::__private::variant_from_payload(variant, unit, #tagging, payload)
                }

                fn from_payload_str(
                    event_type: &str,
                    payload: &str,
                ) -> #krate::__private::serde_json::Result<Self> {
                    Self::from_payload(event_type, #krate::__private::serde_json::from_str(payload)?)
                }
            }

            #checks

            #(#registrations)*
        };
    }
}
