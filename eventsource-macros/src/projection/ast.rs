//! The `#[handles]` and `#[reset]` methods of a projection's impl block, validated.

use std::collections::HashMap;

use quote::ToTokens;
use syn::{FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, Type};

use crate::errors::Errors;
use crate::methods::{
    check_inherent_impl, check_mut_receiver, shared_ref_type, take_marker, take_misplaced_markers,
};

/// What a handler takes after the event, in its order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Extra {
    /// `ctx: &EventContext<'_>`.
    Context,
    /// `conn: &mut Connection`: the transaction of a durable read model.
    Connection,
}

/// One `#[handles] async fn method(&mut self, event: &Event[, ctx: &EventContext<'_>]
/// [, conn: &mut Connection])`.
pub(super) struct HandlesMethod {
    pub(super) method: Ident,
    pub(super) event: Type,
    pub(super) extras: Vec<Extra>,
    /// The `Connection` of a `&mut Connection` argument.
    pub(super) connection: Option<Type>,
    /// Where the return type is (or the name, for `()`), for errors about it.
    pub(super) output_span: proc_macro2::Span,
}

pub(super) struct Handlers {
    pub(super) handles: Vec<HandlesMethod>,
    /// `#[reset] async fn clear(&mut self)`, when given.
    pub(super) reset: Option<Ident>,
    /// The connection every handler (and the reset) takes: a transactional projection.
    pub(super) connection: Option<Type>,
}

const HANDLES_SHAPE: &str = "a #[handles] method is async and takes `&mut self`, one event by reference, \
                             optionally the context and, for a read model written in the store's \
                             transaction, the connection: `async fn created(&mut self, event: &TaskCreated, \
                             ctx: &EventContext<'_>, conn: &mut SqliteConnection)`";

const RESET_SHAPE: &str = "a #[reset] method clears the read model: `async fn clear(&mut self)`, or \
                           `async fn clear(&mut self, conn: &mut SqliteConnection)` when the handlers \
                           take the connection";

impl Handlers {
    /// Removes `#[handles]` and `#[reset]` from `item` and returns the methods they mark;
    /// `None` (with errors reported) when the impl cannot be a projection.
    pub(super) fn take_from(item: &mut ItemImpl, errors: &mut Errors) -> Option<Self> {
        let usable = check_inherent_impl(item, "projection", errors);
        let mut handles = Vec::new();
        let mut reset: Option<(Ident, Option<Type>)> = None;
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
                if let Some((first, _)) = &reset {
                    errors.spanned(
                        &method.sig.ident,
                        format!("two #[reset] methods; the first is `{first}`"),
                    );
                } else if let Some(connection) = check_reset(method, errors) {
                    reset = Some((method.sig.ident.clone(), connection));
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
        let connection = same_connection(&handles, reset.as_ref(), errors)?;
        (usable && !handles.is_empty()).then_some(Handlers {
            handles,
            reset: reset.map(|(ident, _)| ident),
            connection,
        })
    }
}

/// The connection type every handler and the reset take, or `None` when none takes one;
/// an error (and `None` out) on a method that differs from the first handler.
#[allow(clippy::option_option)]
fn same_connection(
    handles: &[HandlesMethod],
    reset: Option<&(Ident, Option<Type>)>,
    errors: &mut Errors,
) -> Option<Option<Type>> {
    let first = handles.first()?;
    let key = |ty: &Option<Type>| ty.as_ref().map(|t| t.to_token_stream().to_string());
    let expected = key(&first.connection);
    let describe = |ty: &Option<String>| match ty {
        Some(ty) => format!("takes the transaction's `&mut {ty}`"),
        None => "takes no connection".to_owned(),
    };
    let mut same = true;
    for handler in &handles[1..] {
        let found = key(&handler.connection);
        if found != expected {
            errors.spanned(
                &handler.method,
                format!(
                    "`{}` {}, but `{}` {}: the handlers of one projection either all write \
                     through the same transaction or none does",
                    handler.method,
                    describe(&found),
                    first.method,
                    describe(&expected)
                ),
            );
            same = false;
        }
    }
    if let Some((reset, connection)) = reset {
        let found = key(connection);
        if found != expected {
            errors.spanned(
                reset,
                format!(
                    "the #[reset] method `{reset}` {}, but the handlers' `{}` {}: the reset \
                     clears the read model where the handlers write it",
                    describe(&found),
                    first.method,
                    describe(&expected)
                ),
            );
            same = false;
        }
    }
    same.then(|| first.connection.clone())
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
    let mut extras = Vec::new();
    let mut connection = None;
    for arg in inputs {
        let ty = match arg {
            FnArg::Typed(typed) => &*typed.ty,
            FnArg::Receiver(receiver) => {
                errors.spanned(receiver, format!("too many arguments: {HANDLES_SHAPE}"));
                return None;
            }
        };
        let extra = match ty {
            Type::Reference(r) if r.mutability.is_none() && is_event_context(&r.elem) => {
                Extra::Context
            }
            Type::Reference(r) if r.mutability.is_some() => {
                connection = Some((*r.elem).clone());
                Extra::Connection
            }
            other => {
                errors.spanned(
                    other,
                    "after the event, a #[handles] method takes the context \
                     (`ctx: &EventContext<'_>`) and the transaction's connection \
                     (`conn: &mut SqliteConnection`), each at most once",
                );
                return None;
            }
        };
        if extras.contains(&extra) {
            errors.spanned(arg, format!("too many arguments: {HANDLES_SHAPE}"));
            return None;
        }
        extras.push(extra);
    }
    let output_span = match &sig.output {
        syn::ReturnType::Type(_, ty) => syn::spanned::Spanned::span(&**ty),
        syn::ReturnType::Default => sig.ident.span(),
    };
    ok.then(|| HandlesMethod {
        method: sig.ident.clone(),
        event,
        extras,
        connection,
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

/// The reset's connection type (`Some(None)`: it takes none), or `None` when it is not a
/// reset method (reported).
#[allow(clippy::option_option)]
fn check_reset(method: &ImplItemFn, errors: &mut Errors) -> Option<Option<Type>> {
    let sig = &method.sig;
    if sig.asyncness.is_none() {
        errors.spanned(
            sig.fn_token,
            format!("#[reset] methods are async: {RESET_SHAPE}"),
        );
        return None;
    }
    if !check_mut_receiver(method, RESET_SHAPE, errors) {
        return None;
    }
    let mut inputs = sig.inputs.iter().skip(1);
    let connection = match inputs.next() {
        None => None,
        Some(FnArg::Typed(typed)) => match &*typed.ty {
            Type::Reference(r) if r.mutability.is_some() => Some((*r.elem).clone()),
            _ => {
                errors.spanned(
                    typed,
                    format!("#[reset] takes no other argument: {RESET_SHAPE}"),
                );
                return None;
            }
        },
        Some(other) => {
            errors.spanned(
                other,
                format!("#[reset] takes no other argument: {RESET_SHAPE}"),
            );
            return None;
        }
    };
    if let Some(extra) = inputs.next() {
        errors.spanned(
            extra,
            format!("#[reset] takes no other argument: {RESET_SHAPE}"),
        );
        return None;
    }
    Some(connection)
}
