//! `#[projection]` on an inherent `impl` block: parse the arguments and the `#[handles]`
//! / `#[reset]` methods, validate them, then expand to the `Projection` impl. The user's
//! impl is always re-emitted with those attributes removed, also next to errors.

mod args;
mod ast;
mod expand;

use proc_macro2::TokenStream;
use quote::ToTokens;

use crate::errors::Errors;

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = args::ProjectionArgs::parse(args, &mut errors);
    let mut item: syn::ItemImpl = match syn::parse2(item.clone()) {
        Ok(item) => item,
        Err(_) => {
            let mut out = syn::Error::new_spanned(
                &item,
                "#[projection] goes on an inherent impl block of the read model: \
                 `#[projection] impl TaskList { ... }`",
            )
            .into_compile_error();
            out.extend(item);
            return out;
        }
    };
    let handlers = ast::Handlers::take_from(&mut item, &mut errors);
    match (errors.finish(), args, handlers) {
        (Ok(()), Some(args), Some(handlers)) => expand::projection(&item, &args, &handlers),
        (Err(error), ..) => {
            let mut out = error.into_compile_error();
            out.extend(item.into_token_stream());
            out
        }
        _ => item.into_token_stream(),
    }
}
