//! The `#[apply]` and `#[init]` methods of an aggregate's impl block, validated.

use std::collections::HashMap;

use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, ReturnType, Type};

use crate::errors::Errors;
use crate::methods::{
    check_inherent_impl, check_mut_receiver, shared_ref_type, take_marker, take_misplaced_markers,
};

/// One `#[apply] fn method(&mut self, event: &Event)`.
pub(super) struct ApplyMethod {
    pub(super) method: Ident,
    pub(super) event: Type,
}

pub(super) struct Handlers {
    pub(super) apply: Vec<ApplyMethod>,
    /// `#[init] fn new(id: Uuid) -> Self`, when given.
    pub(super) init: Option<Ident>,
}

const APPLY_SHAPE: &str = "an #[apply] method takes `&mut self` and one event by reference: \
                           `fn deposited(&mut self, event: &MoneyDeposited)`";

impl Handlers {
    /// Removes `#[apply]` and `#[init]` from `item` and returns the methods they mark;
    /// `None` (with errors reported) when the impl cannot be an aggregate.
    pub(super) fn take_from(item: &mut ItemImpl, errors: &mut Errors) -> Option<Self> {
        let mut usable = check_inherent_impl(item, "aggregate", errors);
        let mut apply = Vec::new();
        let mut init: Option<Ident> = None;
        let mut seen: HashMap<String, Ident> = HashMap::new();
        let mut any_apply = false;
        let mut misplaced = false;
        for impl_item in &mut item.items {
            let ImplItem::Fn(method) = impl_item else {
                misplaced |=
                    take_misplaced_markers(impl_item, &["apply", "init"], APPLY_SHAPE, errors);
                continue;
            };
            let is_apply = take_marker(method, "apply", errors);
            let is_init = take_marker(method, "init", errors);
            if is_apply && is_init {
                errors.spanned(
                    &method.sig.ident,
                    "a method cannot be both #[apply] and #[init]",
                );
                continue;
            }
            if is_init {
                if let Some(first) = &init {
                    errors.spanned(
                        &method.sig.ident,
                        format!("two #[init] methods; the first is `{first}`"),
                    );
                } else if check_init(method, errors) {
                    init = Some(method.sig.ident.clone());
                }
            }
            if !is_apply {
                continue;
            }
            any_apply = true;
            let Some(event) = check_apply(method, errors) else {
                continue;
            };
            let key = event.to_token_stream().to_string();
            if let Some(first) = seen.get(&key) {
                errors.spanned(
                    &event,
                    format!("two #[apply] methods for `{key}`; the first is `{first}`"),
                );
                continue;
            }
            seen.insert(key, method.sig.ident.clone());
            apply.push(ApplyMethod {
                method: method.sig.ident.clone(),
                event,
            });
        }
        if !any_apply && !misplaced && usable {
            errors.spanned(
                &item.self_ty,
                "an aggregate needs at least one #[apply] method: `#[apply] fn deposited(&mut self, event: &MoneyDeposited)`",
            );
            usable = false;
        }
        (usable && !apply.is_empty()).then_some(Handlers { apply, init })
    }
}

/// The event type of a well-formed `#[apply]` method.
fn check_apply(method: &ImplItemFn, errors: &mut Errors) -> Option<Type> {
    let sig = &method.sig;
    let mut ok = true;
    if let Some(asyncness) = sig.asyncness {
        errors.spanned(
            asyncness,
            "#[apply] methods are not async: applying an event only changes the state",
        );
        ok = false;
    }
    if !sig.generics.params.is_empty() {
        errors.spanned(
            &sig.generics,
            "#[apply] methods cannot be generic: each applies one event type",
        );
        ok = false;
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        let unit = matches!(&**ty, Type::Tuple(t) if t.elems.is_empty());
        if !unit {
            errors.spanned(
                ty,
                "#[apply] methods return nothing: applying a stored event cannot fail",
            );
            ok = false;
        }
    }
    if !matches!(sig.inputs.first(), Some(FnArg::Receiver(_))) {
        check_mut_receiver(method, APPLY_SHAPE, errors);
        return None;
    }
    ok &= check_mut_receiver(method, APPLY_SHAPE, errors);
    let mut inputs = sig.inputs.iter().skip(1);
    let event = match inputs.next() {
        None => {
            errors.spanned(
                &sig.ident,
                format!("missing the event argument: {APPLY_SHAPE}"),
            );
            return None;
        }
        Some(arg) => shared_ref_type(arg, "event", errors)?,
    };
    if let Some(extra) = inputs.next() {
        errors.spanned(
            extra,
            format!("one event per #[apply] method: {APPLY_SHAPE}"),
        );
        return None;
    }
    ok.then_some(event)
}

/// `true` for a well-formed `#[init] fn new(aggregate_id: Uuid) -> Self`.
fn check_init(method: &ImplItemFn, errors: &mut Errors) -> bool {
    let sig = &method.sig;
    let shape = "an #[init] method builds the initial state from the aggregate id: \
                 `fn new(aggregate_id: Uuid) -> Self`";
    if let Some(asyncness) = sig.asyncness {
        errors.spanned(asyncness, format!("#[init] methods are not async: {shape}"));
        return false;
    }
    if let Some(FnArg::Receiver(receiver)) = sig.inputs.first() {
        errors.spanned(receiver, format!("#[init] takes no receiver: {shape}"));
        return false;
    }
    if sig.inputs.len() != 1 || matches!(sig.output, ReturnType::Default) {
        errors.push(syn::Error::new(sig.span(), shape));
        return false;
    }
    true
}
