"""Sophia's static ``update_hessian=``: the same trajectory as the ``lax.cond`` path, without a conditional."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx import curvature as cv
from tests.curvature.util import DenseQuadratic, logits_problem, tree_of

K = 3
STEPS = 20


def _has_cond(jaxpr) -> bool:
  """Whether a ``cond`` primitive appears anywhere in ``jaxpr``, sub-jaxprs included."""
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "cond":
      return True
    for v in eqn.params.values():
      for sub in v if isinstance(v, (tuple, list)) else (v,):
        inner = getattr(sub, "jaxpr", sub)
        if hasattr(inner, "eqns") and _has_cond(inner):
          return True
  return False


def _cases():
  prob = DenseQuadratic()  # Hutchinson is noisy here: the probes (hence the key) matter
  hutch = (cv.sophia_h(0.02, weight_decay=0.1, update_interval=K, num_probes=2, key=5),
           tree_of(prob.x0), prob.loss, "obj_fn")
  params, loss, logits_fn = logits_problem()
  gnb = (cv.sophia_g(0.05, weight_decay=0.1, update_interval=K, key=4), params, loss, logits_fn)
  return {"sophia_h": hutch, "sophia_g": gnb}


@pytest.mark.parametrize("name", ["sophia_h", "sophia_g"])
def test_static_update_hessian_equals_the_cond_path_bit_for_bit(name):
  tx, params, loss, fn = _cases()[name]
  kw = {"obj_fn": loss} if fn == "obj_fn" else {"logits_fn": fn}

  def step(p, s, refresh):
    u, s = tx.update(jax.grad(loss)(p), s, p, update_hessian=refresh, **kw)
    return optax.apply_updates(p, u), s

  by_cond = jax.jit(lambda p, s: step(p, s, None))
  static = jax.jit(step, static_argnames="refresh")
  p1 = p2 = params
  s1 = s2 = tx.init(params)
  for t in range(STEPS):
    p1, s1 = by_cond(p1, s1)
    p2, s2 = static(p2, s2, refresh=t % K == 0)
    chex.assert_trees_all_equal((p1, s1), (p2, s2))  # exact: same ops, only the conditional is gone
  assert not np.allclose(s1[0].h["w"], 0.0)  # the estimate really was folded in


@pytest.mark.parametrize("refresh", [True, False])
def test_static_update_hessian_leaves_no_conditional_and_keeps_the_state(refresh):
  tx, params, loss, _ = _cases()["sophia_h"]
  state = tx.init(params)
  g = jax.tree.map(jnp.ones_like, params)
  kw = {"obj_fn": loss} if refresh else {}  # skipping needs no obj_fn
  f = lambda s: tx.update(g, s, params, update_hessian=refresh, **kw)
  assert not _has_cond(jax.make_jaxpr(f)(state).jaxpr)
  assert _has_cond(jax.make_jaxpr(lambda s: tx.update(g, s, params, obj_fn=loss))(state).jaxpr)
  _, new = jax.jit(f)(state)
  chex.assert_trees_all_equal_shapes_and_dtypes(state, new)


def test_update_hessian_must_be_a_python_bool():
  tx, params, loss, _ = _cases()["sophia_h"]
  with pytest.raises(TypeError, match="update_hessian must be a Python bool"):
    tx.update(params, tx.init(params), params, obj_fn=loss, update_hessian=jnp.asarray(True))


def test_a_donated_state_leaves_the_factory_key_usable():
  tx, params, loss, _ = _cases()["sophia_h"]
  jax.jit(lambda s: jax.tree.map(lambda x: x + 0, s), donate_argnums=0)(tx.init(params))
  chex.assert_trees_all_equal(tx.init(params)[0].key, jax.random.PRNGKey(5))  # not deleted by the donation
