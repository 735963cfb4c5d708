//! Compile-time checks that more than one macro generates.

use proc_macro2::TokenStream;
use quote::{quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{LitStr, Path, Type};

/// A constant assertion, spanned on `event`, that fails to compile when `event` is a
/// superseded version (a later version names it as `previous`): its stored rows read
/// back as the newest version, so an `#[apply]` or `#[handles]` (`attribute`) of it
/// would never run.
pub(crate) fn not_superseded(krate: &Path, event: &Type, attribute: &str) -> TokenStream {
    let shown = event.to_token_stream().to_string().replace(' ', "");
    let message = LitStr::new(
        &format!(
            "`{shown}` is superseded: a later version names it as `previous`, so its stored \
             rows read back as the newest version of the event; {attribute} the newest \
             version instead"
        ),
        event.span(),
    );
    quote_spanned! {event.span()=>
        const _: () = {
            use #krate::__private::NotSuperseded as _;
            ::core::assert!(
                !#krate::__private::SupersededCheck::<#event>::SUPERSEDED,
                #message
            )
        };
    }
}
