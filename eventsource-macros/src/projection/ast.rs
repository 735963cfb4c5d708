//! The `#[handles]` and `#[reset]` methods of a projection's impl block, validated.

use std::collections::HashMap;

use quote::ToTokens;
use syn::{FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, Type};

use crate::errors::Errors;
use crate::methods::{
    check_inherent_impl, check_mut_receiver, shared_ref_type, take_marker, take_misplaced_markers,
};

/// One `#[handles] async fn method(&mut self, event: &Event[, ctx: &EventContext<'_>])`.
pub(super) struct HandlesMethod {
    pub(super) method: Ident,
    pub(super) event: Type,
    pub(super) with_context: bool,
    /// Where the return type is (or the name, for `()`), for errors about it.
    pub(super) output_span: proc_macro2::Span,
}

pub(super) struct Handlers {
    pub(super) handles: Vec<HandlesMethod>,
    /// `#[reset] async fn clear(&mut self)`, when given.
    pub(super) reset: Option<Ident>,
}

const HANDLES_SHAPE: &str = "a #[handles] method is async and takes `&mut self`, one event by reference \
                             and optionally the context: `async fn created(&mut self, event: &TaskCreated, \
                             ctx: &EventContext<'_>)`";

const RESET_SHAPE: &str = "a #[reset] method clears the read model: `async fn clear(&mut self)`";

impl Handlers {
    /// Removes `#[handles]` and `#[reset]` from `item` and returns the methods they mark;
    /// `None` (with errors reported) when the impl cannot be a projection.
    pub(super) fn take_from(item: &mut ItemImpl, errors: &mut Errors) -> Option<Self> {
        let usable = check_inherent_impl(item, "projection", errors);
        let mut handles = Vec::new();
        let mut reset: Option<Ident> = None;
        let mut seen: HashMap<String, Ident> = HashMap::new();
        let mut any_handles = false;
        let mut misplaced = false;
        for impl_item in &mut item.items {
            let ImplItem::Fn(method) = impl_item else {
                misplaced |=
                    take_misplaced_markers(impl_item, &["handles", "reset"], HANDLES_SHAPE, errors);
                continue;
            };
            let is_handles = take_marker(method, "handles", errors);
            let is_reset = take_marker(method, "reset", errors);
            if is_handles && is_reset {
                errors.spanned(
                    &method.sig.ident,
                    "a method cannot be both #[handles] and #[reset]",
                );
                continue;
            }
            if is_reset {
                if let Some(first) = &reset {
                    errors.spanned(
                        &method.sig.ident,
                        format!("two #[reset] methods; the first is `{first}`"),
                    );
                } else if check_reset(method, errors) {
                    reset = Some(method.sig.ident.clone());
                }
            }
            if !is_handles {
                continue;
            }
            any_handles = true;
            let Some(handler) = check_handles(method, errors) else {
                continue;
            };
            let key = handler.event.to_token_stream().to_string();
            if let Some(first) = seen.get(&key) {
                errors.spanned(
                    &handler.event,
                    format!("two #[handles] methods for `{key}`; the first is `{first}`"),
                );
                continue;
            }
            seen.insert(key, handler.method.clone());
            handles.push(handler);
        }
        if !any_handles && !misplaced && usable {
            errors.spanned(
                &item.self_ty,
                "a projection needs at least one #[handles] method: \
                 `#[handles] async fn created(&mut self, event: &TaskCreated)`",
            );
            return None;
        }
        (usable && !handles.is_empty()).then_some(Handlers { handles, reset })
    }
}

fn check_handles(method: &ImplItemFn, errors: &mut Errors) -> Option<HandlesMethod> {
    let sig = &method.sig;
    let mut ok = true;
    if sig.asyncness.is_none() {
        errors.spanned(
            sig.fn_token,
            format!("#[handles] methods are async: {HANDLES_SHAPE}"),
        );
        ok = false;
    }
    if !sig.generics.params.is_empty() {
        errors.spanned(
            &sig.generics,
            "#[handles] methods cannot be generic: each handles one event type",
        );
        ok = false;
    }
    if !matches!(sig.inputs.first(), Some(FnArg::Receiver(_))) {
        check_mut_receiver(method, HANDLES_SHAPE, errors);
        return None;
    }
    ok &= check_mut_receiver(method, HANDLES_SHAPE, errors);
    let mut inputs = sig.inputs.iter().skip(1);
    let event = match inputs.next() {
        None => {
            errors.spanned(
                &sig.ident,
                format!("missing the event argument: {HANDLES_SHAPE}"),
            );
            return None;
        }
        Some(arg) => shared_ref_type(arg, "event", errors)?,
    };
    let with_context = match inputs.next() {
        None => false,
        Some(arg) => {
            let context = match arg {
                FnArg::Typed(typed) => match &*typed.ty {
                    Type::Reference(r) if r.mutability.is_none() && is_event_context(&r.elem) => {
                        None
                    }
                    other => Some(other.clone()),
                },
                FnArg::Receiver(_) => None,
            };
            if let Some(wrong) = context {
                errors.spanned(
                    wrong,
                    "the second argument of a #[handles] method is the context: `ctx: &EventContext<'_>`",
                );
                return None;
            }
            true
        }
    };
    if let Some(extra) = inputs.next() {
        errors.spanned(extra, format!("too many arguments: {HANDLES_SHAPE}"));
        return None;
    }
    let output_span = match &sig.output {
        syn::ReturnType::Type(_, ty) => syn::spanned::Spanned::span(&**ty),
        syn::ReturnType::Default => sig.ident.span(),
    };
    ok.then(|| HandlesMethod {
        method: sig.ident.clone(),
        event,
        with_context,
        output_span,
    })
}

/// `EventContext`, `EventContext<'_>`, `eventsource::EventContext<'a>`, ...
fn is_event_context(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "EventContext"),
        _ => false,
    }
}

fn check_reset(method: &ImplItemFn, errors: &mut Errors) -> bool {
    let sig = &method.sig;
    if sig.asyncness.is_none() {
        errors.spanned(
            sig.fn_token,
            format!("#[reset] methods are async: {RESET_SHAPE}"),
        );
        return false;
    }
    if !check_mut_receiver(method, RESET_SHAPE, errors) {
        return false;
    }
    if let Some(extra) = sig.inputs.iter().nth(1) {
        errors.spanned(extra, format!("#[reset] takes no arguments: {RESET_SHAPE}"));
        return false;
    }
    true
}
