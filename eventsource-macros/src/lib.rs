//! Implementation detail of `eventsource`; not for direct use.
//!
//! The macros are re-exported and documented by the `eventsource` crate.

mod aggregate;
mod checks;
mod domain_event;
mod errors;
mod methods;
mod projection;
mod values;

use proc_macro::TokenStream;

/// Derives `eventsource::DomainEvent` and registers the type; see the `eventsource` docs.
#[proc_macro_derive(DomainEvent, attributes(event))]
pub fn derive_domain_event(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    domain_event::expand(&input).into()
}

/// Implements `eventsource::Aggregate` for the state type of an `impl` block whose
/// `#[apply]` methods apply events; see the `eventsource` docs.
#[proc_macro_attribute]
pub fn aggregate(args: TokenStream, item: TokenStream) -> TokenStream {
    aggregate::expand(args.into(), item.into()).into()
}

/// Implements `eventsource::Projection` for the read model of an `impl` block whose
/// `#[handles]` async methods handle events; see the `eventsource` docs.
#[proc_macro_attribute]
pub fn projection(args: TokenStream, item: TokenStream) -> TokenStream {
    projection::expand(args.into(), item.into()).into()
}
