//! Code generation for `#[projection]`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemImpl, LitStr, Type};

use super::args::ProjectionArgs;
use super::ast::{Extra, Handlers};
use crate::errors::respan;

pub(super) fn projection(
    item: &ItemImpl,
    args: &ProjectionArgs,
    handlers: &Handlers,
) -> TokenStream {
    let krate = &args.krate;
    let durable = args.durable;
    let self_ty = &item.self_ty;
    let name = args.name.clone().unwrap_or_else(|| {
        let ident = match &**self_ty {
            Type::Path(path) => path.path.segments.last().map(|s| s.ident.to_string()),
            _ => None,
        };
        LitStr::new(&ident.unwrap_or_default(), self_ty.span())
    });
    let event_names = handlers.handles.iter().map(|h| {
        let event = &h.event;
        quote_spanned!(event.span()=> <#event as #krate::DomainEvent>::EVENT_TYPES)
    });
    let dispatch = handlers.handles.iter().map(|h| {
        let (event, method) = (&h.event, &h.method);
        let extras = h.extras.iter().map(|extra| match extra {
            Extra::Context => quote!(&context),
            Extra::Connection => quote!(&mut *conn),
        });
        let call = quote!(#self_ty::#method(self, event #(, #extras)*).await);
        // Spanned on the return type: "not a valid handler result" points there.
        let converted = respan(
            quote!(#krate::__private::IntoHandlerResult::into_handler_result(#call)),
            h.output_span,
        );
        quote! {
            if let ::core::option::Option::Some(event) = typed.downcast_ref::<#event>() {
                return #converted;
            }
        }
    });
    let connection = handlers.connection.as_ref();
    let reset = handlers.reset.as_ref().map(|reset| match connection {
        Some(connection) => quote! {
            async fn reset(&mut self, conn: &mut #connection) -> ::core::result::Result<(), #krate::BoxError> {
                #krate::__private::IntoHandlerResult::into_handler_result(#self_ty::#reset(self, conn).await)
            }
        },
        None => quote! {
            async fn reset(&mut self) -> ::core::result::Result<(), #krate::BoxError> {
                #krate::__private::IntoHandlerResult::into_handler_result(#self_ty::#reset(self).await)
            }
        },
    });
    // A read model written through the store's transaction: `TransactionalProjection<C>`,
    // run by the backend's runner; otherwise a `Projection`.
    let (trait_path, conn_param, durable_fn) = match connection {
        Some(connection) => (
            quote!(#krate::TransactionalProjection<#connection>),
            quote!(, conn: &mut #connection),
            quote!(),
        ),
        None => (
            quote!(#krate::Projection),
            quote!(),
            quote! {
                fn is_durable(&self) -> bool {
                    #durable
                }
            },
        ),
    };
    // A #[handles] of a superseded event version fails to compile, on its type.
    let not_superseded = handlers
        .handles
        .iter()
        .map(|h| crate::checks::not_superseded(krate, &h.event, "#[handles]"));
    quote! {
        #item

        #(#not_superseded)*

        const _: () = {
            #[#krate::__private::async_trait]
            #[automatically_derived]
            impl #trait_path for #self_ty {
                fn name(&self) -> &str {
                    #name
                }

                #durable_fn

                fn handled_event_types(&self) -> &'static [&'static str] {
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

                async fn handle(
                    &mut self,
                    stored: &#krate::StoredEvent
                    #conn_param
                ) -> ::core::result::Result<(), #krate::BoxError> {
                    let context = #krate::EventContext::new(stored);
                    let _ = &context;
                    match &stored.payload {
                        #krate::EventPayload::Typed(typed) => {
                            let typed = #krate::AnyEvent::as_any(&**typed);
                            #(#dispatch)*
                            ::core::result::Result::Ok(())
                        }
                        raw => {
                            if <Self as #trait_path>::handled_event_types(self).contains(&raw.event_type()) {
                                #krate::__private::undecodable(#name, raw)
                            } else {
                                ::core::result::Result::Ok(())
                            }
                        }
                    }
                }

                #reset
            }
        };
    }
}
