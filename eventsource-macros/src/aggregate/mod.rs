//! `#[aggregate(name = "...")]` on an inherent `impl` block: parse the arguments and the
//! `#[apply]` / `#[init]` methods, validate them, then expand to the `Aggregate` and
//! `Apply<E>` impls. The user's impl is always re-emitted with those attributes removed,
//! also next to errors, so the rest of the crate keeps type-checking.

mod args;
mod ast;
mod expand;

use proc_macro2::TokenStream;
use quote::ToTokens;

use crate::errors::Errors;

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = args::AggregateArgs::parse(args, &mut errors);
    let mut item: syn::ItemImpl = match syn::parse2(item.clone()) {
        Ok(item) => item,
        Err(_) => {
            let mut out = syn::Error::new_spanned(
                &item,
                "#[aggregate] goes on an inherent impl block of the state type: \
                 `#[aggregate(name = \"Account\")] impl AccountState { ... }`",
            )
            .into_compile_error();
            out.extend(item);
            return out;
        }
    };
    let handlers = ast::Handlers::take_from(&mut item, &mut errors);
    match (errors.finish(), args, handlers) {
        (Ok(()), Some(args), Some(handlers)) => expand::aggregate(&item, &args, &handlers),
        (Err(error), ..) => {
            let mut out = error.into_compile_error();
            out.extend(item.into_token_stream());
            out
        }
        // Every `None` comes with an error; keep the item anyway.
        _ => item.into_token_stream(),
    }
}
