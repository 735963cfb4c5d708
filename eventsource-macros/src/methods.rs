//! Checks shared by the attribute macros that read marked methods of an `impl` block
//! (`#[apply]`, `#[handles]`, `#[init]`, `#[reset]`).

use syn::{FnArg, ImplItemFn, ItemImpl, Type};

use crate::errors::Errors;

/// Removes the marker attribute `name` from `method`; `true` when it was there.
pub(crate) fn take_marker(method: &mut ImplItemFn, name: &str, errors: &mut Errors) -> bool {
    let before = method.attrs.len();
    let mut found = false;
    method.attrs.retain(|attr| {
        if !attr.path().is_ident(name) {
            return true;
        }
        if found {
            errors.spanned(attr, format!("duplicate #[{name}]"));
        } else if !matches!(attr.meta, syn::Meta::Path(_)) {
            errors.spanned(&attr.meta, format!("#[{name}] takes no arguments"));
        }
        found = true;
        false
    });
    method.attrs.len() != before
}

/// Removes the `markers` attributes (e.g. `#[handles]`) from an impl item that is not a
/// method, reporting each on its own span: they go on methods only. `true` when any
/// were found, so the caller does not also report "no marked method".
pub(crate) fn take_misplaced_markers(
    item: &mut syn::ImplItem,
    markers: &[&str],
    shape: &str,
    errors: &mut Errors,
) -> bool {
    let (attrs, what) = match item {
        syn::ImplItem::Const(c) => (&mut c.attrs, "an associated const"),
        syn::ImplItem::Type(t) => (&mut t.attrs, "an associated type"),
        syn::ImplItem::Macro(m) => (&mut m.attrs, "a macro call"),
        _ => return false,
    };
    let before = attrs.len();
    attrs.retain(|attr| {
        let Some(marker) = markers.iter().find(|m| attr.path().is_ident(m)) else {
            return true;
        };
        errors.spanned(
            attr,
            format!("#[{marker}] goes on a method, not on {what}: {shape}"),
        );
        false
    });
    attrs.len() != before
}

/// Reports what keeps `item` from being the inherent, non-generic impl of a named type
/// that `#[macro_name]` needs; `true` when it is usable.
pub(crate) fn check_inherent_impl(item: &ItemImpl, macro_name: &str, errors: &mut Errors) -> bool {
    let mut usable = true;
    if let Some((_, path, _)) = &item.trait_ {
        errors.spanned(
            path,
            format!("#[{macro_name}] goes on an inherent impl block (`impl MyType {{ ... }}`), not a trait impl"),
        );
        usable = false;
    }
    if !item.generics.params.is_empty() {
        errors.spanned(
            &item.generics,
            format!("#[{macro_name}] cannot be generic: it registers one concrete type"),
        );
        usable = false;
    }
    if !matches!(*item.self_ty, Type::Path(_)) {
        errors.spanned(&item.self_ty, format!("#[{macro_name}] needs a named type"));
        usable = false;
    }
    usable
}

/// Checks that the first input is `&mut self`; `false` (reported) otherwise.
pub(crate) fn check_mut_receiver(method: &ImplItemFn, shape: &str, errors: &mut Errors) -> bool {
    match method.sig.inputs.first() {
        Some(FnArg::Receiver(receiver)) => {
            let ok = receiver.reference.is_some()
                && receiver.mutability.is_some()
                && receiver.colon_token.is_none();
            if !ok {
                errors.spanned(receiver, format!("wrong receiver: {shape}"));
            }
            ok
        }
        Some(FnArg::Typed(arg)) => {
            errors.spanned(arg, format!("missing `&mut self`: {shape}"));
            false
        }
        None => {
            errors.spanned(&method.sig.ident, format!("missing `&mut self`: {shape}"));
            false
        }
    }
}

/// The type behind a shared reference argument (`event: &MoneyDeposited` ->
/// `MoneyDeposited`), or a reported error.
pub(crate) fn shared_ref_type(arg: &FnArg, what: &str, errors: &mut Errors) -> Option<Type> {
    match arg {
        FnArg::Typed(arg) => match &*arg.ty {
            Type::Reference(reference) if reference.mutability.is_none() => {
                Some((*reference.elem).clone())
            }
            other => {
                errors.spanned(
                    other,
                    format!(
                        "take the {what} by shared reference: `&{}`",
                        type_hint(other)
                    ),
                );
                None
            }
        },
        FnArg::Receiver(receiver) => {
            errors.spanned(receiver, format!("expected the {what}, found a receiver"));
            None
        }
    }
}

fn type_hint(ty: &Type) -> String {
    match ty {
        Type::Reference(r) => quote::ToTokens::to_token_stream(&r.elem).to_string(),
        other => quote::ToTokens::to_token_stream(other).to_string(),
    }
}
