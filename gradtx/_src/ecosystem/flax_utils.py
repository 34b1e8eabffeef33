"""Flax integration: a TrainState that forwards extra inputs, and extra inputs built from nnx models."""

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import optax
from flax import nnx
from flax.training import train_state

from gradtx._src.core.extra_inputs import build_extra_args


class TrainState(train_state.TrainState):
  """Flax's linen ``TrainState`` whose ``apply_gradients`` forwards extra inputs to the optimizer.

  Same fields, ``create`` and serialization as ``flax.training.train_state.TrainState``; keyword
  arguments of ``apply_gradients`` that are not fields of the state go to ``tx.update``.

  Example:
    >>> state = gradtx.flax.TrainState.create(apply_fn=model.apply, params=params, tx=gradtx.sam_sgd(0.1))
    >>> state = state.apply_gradients(grads=grads, grad_fn=lambda p: jax.grad(loss)(p, batch))

  References:
    flax.training.train_state.TrainState.
  """

  def apply_gradients(self, *, grads: Any, **kwargs: Any) -> "TrainState":
    """Apply one optimizer step; fields in ``kwargs`` are replaced, the rest go to ``tx.update``."""
    fields = {f.name for f in dataclasses.fields(self)}
    replace = {k: v for k, v in kwargs.items() if k in fields}
    extra = {k: v for k, v in kwargs.items() if k not in fields}
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params, **extra)
    return self.replace(
        step=self.step + 1,
        params=optax.apply_updates(self.params, updates),
        opt_state=opt_state,
        **replace,
    )


def nnx_extra_args(
    names: Iterable[str],
    model: nnx.Module,
    loss_fn: Callable[..., Any],
    batch: Any = None,
    *,
    wrt: Any = nnx.Param,
    logits_fn: Callable[..., Any] | None = None,
) -> dict[str, Any]:
  """Build extra ``update`` inputs for ``nnx.Optimizer.update`` from a model and a loss.

  ``nnx.Optimizer`` hands its transformation the *pure* state of the ``wrt`` variables. The
  functions built here take that pure state, merge it with the model's graph and its other
  variables, and evaluate ``loss_fn(model, batch)`` (``loss_fn(model)`` when ``batch`` is None).

  Args:
    names: extra input names, e.g. ``gradtx.get_spec("sam_sgd").extra_inputs``.
    model: the nnx model.
    loss_fn: ``loss_fn(model, batch) -> scalar``.
    batch: the current batch (leaves with a leading example axis, for per-example gradients).
    wrt: the filter the ``nnx.Optimizer`` was built with.
    logits_fn: ``logits_fn(model, batch) -> logits`` (``logits_fn(model)`` when ``batch`` is
      None), needed only for the extra input ``"logits_fn"`` (Sophia-G).

  Returns:
    A dict of keyword arguments for ``optimizer.update(model, grads, **extra)``.

  Example:
    >>> extra = gradtx.flax.nnx_extra_args(["grad_fn"], model, loss_fn, (x, y))
    >>> optimizer.update(model, grads, **extra)

  References:
    flax.nnx.Optimizer.
  """
  # nnx.split is typed as returning a variadic tuple; with two filters it has exactly three items.
  graphdef, _, rest = nnx.split(model, wrt, ...)  # type: ignore[misc]
  params = nnx.as_pure(nnx.state(model, wrt))

  def pure_loss(p, *batch_args):
    return loss_fn(nnx.merge(graphdef, p, rest), *batch_args)

  def pure_logits(p, *batch_args):
    assert logits_fn is not None
    return logits_fn(nnx.merge(graphdef, p, rest), *batch_args)

  return build_extra_args(names, pure_loss, params, batch, logits_fn=None if logits_fn is None else pure_logits)
