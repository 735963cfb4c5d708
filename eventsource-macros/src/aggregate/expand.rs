//! Code generation for `#[aggregate]`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{ItemImpl, LitStr};

use super::args::AggregateArgs;
use super::ast::Handlers;
use crate::errors::respan;

pub(super) fn aggregate(item: &ItemImpl, args: &AggregateArgs, handlers: &Handlers) -> TokenStream {
    let krate = &args.krate;
    let name = &args.name;
    let snapshot_version = args.snapshot_version;
    let self_ty = &item.self_ty;
    let initial = match &handlers.init {
        Some(init) => quote!(#self_ty::#init(aggregate_id)),
        None => quote_spanned!(self_ty.span()=> {
            let _ = aggregate_id;
            <#self_ty as ::core::default::Default>::default()
        }),
    };
    let event_names = handlers.apply.iter().map(|h| {
        let event = &h.event;
        quote_spanned!(event.span()=> <#event as #krate::DomainEvent>::EVENT_TYPES)
    });
    let dispatch = handlers.apply.iter().map(|h| {
        let (event, method) = (&h.event, &h.method);
        quote! {
            if let ::core::option::Option::Some(event) = event.downcast_ref::<#event>() {
                #self_ty::#method(self, event);
                return true;
            }
        }
    });
    let apply_impls = handlers.apply.iter().map(|h| {
        let (event, method) = (&h.event, &h.method);
        // Spanned on the event type, so "not a DomainEvent" points at the user's type.
        let trait_path = respan(quote!(#krate::Apply<#event>), event.span());
        quote! {
            #[automatically_derived]
            impl #trait_path for #self_ty {
                fn apply(&mut self, event: &#event) {
                    #self_ty::#method(self, event)
                }
            }
        }
    });
    // An #[apply] of an event declared for another aggregate type fails to compile, on
    // the event type of the method.
    let declared_for = handlers.apply.iter().map(|h| {
        let event = &h.event;
        let message = LitStr::new(
            &format!(
                "`{}` is declared for another aggregate type (#[event(aggregate = \"...\")]) and cannot be applied by aggregate `{}`; #[apply] takes events declared with aggregate = \"{}\", or without `aggregate`",
                event.to_token_stream().to_string().replace(' ', ""),
                name.value(),
                name.value()
            ),
            event.span(),
        );
        let not_superseded = crate::checks::not_superseded(krate, event, "#[apply]");
        quote_spanned! {event.span()=>
            const _: () = ::core::assert!(
                #krate::__private::may_apply(<#event as #krate::DomainEvent>::AGGREGATE_TYPE, #name),
                #message
            );
            #not_superseded
        }
    });
    quote! {
        #item

        #(#declared_for)*

        const _: () = {
            #[automatically_derived]
            impl #krate::Aggregate for #self_ty {
                const AGGREGATE_TYPE: &'static str = #name;
                const SNAPSHOT_VERSION: u32 = #snapshot_version;

                fn initial_state(aggregate_id: #krate::__private::Uuid) -> Self {
                    #initial
                }

                fn handled_event_types() -> &'static [&'static str] {
                    // Each event type's stored names: an enum stored per variant has one
                    // per variant.
                    static TYPES: ::std::sync::OnceLock<::std::vec::Vec<&'static str>> =
                        ::std::sync::OnceLock::new();
                    TYPES.get_or_init(|| {
                        let mut all: ::std::vec::Vec<&'static str> = ::std::vec::Vec::new();
                        #(all.extend_from_slice(#event_names);)*
                        all
                    })
                }

                fn apply_any(&mut self, event: &dyn #krate::AnyEvent) -> bool {
                    let event = #krate::AnyEvent::as_any(event);
                    #(#dispatch)*
                    false
                }
            }

            #(#apply_impls)*

            #krate::__private::inventory::submit! {
                #krate::__private::AggregateRegistration {
                    name: #name,
                    snapshot_version: #snapshot_version,
                    type_name: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#self_ty)),
                }
            }
        };
    }
}
