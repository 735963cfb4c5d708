//! Implementation detail of `eventsource`; not for direct use.
//!
//! The macros are re-exported and documented by the `eventsource` crate.

mod domain_event;
mod errors;

use proc_macro::TokenStream;

/// Derives `eventsource::DomainEvent` and registers the type; see the `eventsource` docs.
#[proc_macro_derive(DomainEvent, attributes(event))]
pub fn derive_domain_event(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    domain_event::expand(&input).into()
}
