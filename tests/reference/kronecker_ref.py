"""Float64 NumPy references of Shampoo, SOAP and PSGD-Kron, written from the papers (never imports gradtx).

Each reference keeps its state in plain dicts keyed by leaf name and loops over blocks explicitly
(no padding), so that it checks the vectorised, padded implementation independently.
"""

import numpy as np
import scipy.linalg

EPS64 = np.finfo(np.float64).eps


def as_matrix(x):
  return x.reshape(-1, x.shape[-1]) if x.ndim >= 2 else None


def inverse_root(s, r, eps):
  """(S + eps' I)^(-1/r), eps' = eps + 100 machine-eps * lambda_max, negative eigenvalues clamped to 0."""
  s = 0.5 * (s + s.T)
  w, v = np.linalg.eigh(s)
  w = np.maximum(w, 0.0)
  w = w + eps + 100 * EPS64 * w.max()
  return (v * w ** (-1.0 / r)) @ v.T


def blocks(n, bs):
  """Slices cutting a side of length n into blocks of at most bs (None: one block)."""
  if bs is None or n <= bs:
    return [slice(0, n)]
  return [slice(i, min(i + bs, n)) for i in range(0, n, bs)]


class ShampooRef:
  """Shampoo as in the algorithm reference (sec. 2.8): EMA statistics, roots every f steps, grafting."""

  def __init__(self, params, *, lr, b1=0.9, b2=0.999, eps=1e-12, wd=0.0, f=10, start=0, bs=None,
               max_dim=8192, graft="adagrad", graft_eps=1e-8, r=4, nesterov=False):
    self.__dict__.update(lr=lr, b1=b1, b2=b2, eps=eps, wd=wd, f=f, start=start, bs=bs, max_dim=max_dim,
                         graft=graft, graft_eps=graft_eps, r=r, nesterov=nesterov)
    self.t = 0
    self.m = {k: np.zeros_like(p) for k, p in params.items()}
    self.nu = {k: np.zeros_like(p) for k, p in params.items()}
    self.blocks = {}
    for k, p in params.items():
      mat = as_matrix(p)
      if mat is None or max(mat.shape) > max_dim:
        self.blocks[k] = np.zeros_like(p)  # diagonal statistic
        continue
      bl = []
      for rs in blocks(mat.shape[0], bs):
        for cs in blocks(mat.shape[1], bs):
          nr, nc = rs.stop - rs.start, cs.stop - cs.start
          bl.append(dict(rs=rs, cs=cs, L=np.zeros((nr, nr)), R=np.zeros((nc, nc)), PL=np.eye(nr), PR=np.eye(nc)))
      self.blocks[k] = bl

  def step(self, params, grads):
    count = self.t
    self.t += 1
    out = {}
    for k, p in params.items():
      g = grads[k]
      if self.graft == "adagrad":
        self.nu[k] = self.nu[k] + g * g
        dg = g / (np.sqrt(self.nu[k]) + self.graft_eps)
      elif self.graft == "adam":
        self.nu[k] = self.b2 * self.nu[k] + (1 - self.b2) * g * g
        dg = g / (np.sqrt(self.nu[k] / (1 - self.b2 ** self.t)) + self.graft_eps)
      else:
        dg = g
      st = self.blocks[k]
      if isinstance(st, np.ndarray):
        v = self.b2 * st + (1 - self.b2) * g * g
        self.blocks[k] = v
        d = g * (v + self.eps + 100 * EPS64 * v) ** (-2.0 / self.r)
        if self.graft is not None:
          d = d * np.linalg.norm(dg) / np.linalg.norm(d)
      else:
        gm, dgm = as_matrix(g), as_matrix(dg)
        dm = np.zeros_like(gm)
        refresh = count >= self.start and (count - self.start) % self.f == 0
        for b in st:
          rs, cs = b["rs"], b["cs"]
          gb = gm[rs, cs]
          b["L"] = self.b2 * b["L"] + (1 - self.b2) * gb @ gb.T
          b["R"] = self.b2 * b["R"] + (1 - self.b2) * gb.T @ gb
          if refresh:
            b["PL"] = inverse_root(b["L"], self.r, self.eps)
            b["PR"] = inverse_root(b["R"], self.r, self.eps)
          db = b["PL"] @ gb @ b["PR"]
          if self.graft is not None:
            db = db * np.linalg.norm(dgm[rs, cs]) / np.linalg.norm(db)
          dm[rs, cs] = db
        d = dm.reshape(g.shape)
      if count < self.start:
        d = dg
      self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * d
      upd = self.b1 * self.m[k] + (1 - self.b1) * d if self.nesterov else self.m[k]
      out[k] = p - self.lr * (upd + self.wd * p)
    return out


def _canon(q, ref):
  return q * np.where(ref < 0, -1.0, 1.0)[None, :]


def eigh_desc(s):
  _, q = np.linalg.eigh(0.5 * (s + s.T))
  q = q[:, ::-1]
  idx = np.argmax(np.abs(q), axis=0)
  return _canon(q, q[idx, np.arange(q.shape[1])])


class SoapRef:
  """SOAP's first release (algorithm reference sec. 2.9), with sign-fixed eigenvectors and QR."""

  def __init__(self, params, *, lr, b1=0.95, b2=0.95, eps=1e-8, wd=0.01, shampoo_beta=-1.0, f=10,
               max_dim=10000):
    self.__dict__.update(lr=lr, b1=b1, b2=b2, eps=eps, wd=wd, f=f, max_dim=max_dim)
    self.s = b2 if shampoo_beta < 0 else shampoo_beta
    self.calls = 0
    self.m = {k: None for k in params}
    self.v = {k: None for k in params}
    self.fac = {}
    for k, p in params.items():
      mat = as_matrix(p)
      if mat is None:
        self.fac[k] = [None, None]
      else:
        self.fac[k] = [dict(S=np.zeros((n, n)), Q=None) if n <= max_dim else None for n in mat.shape]

  def _stats(self, k, gm):
    fl, fr = self.fac[k]
    if fl is not None:
      fl["S"] = self.s * fl["S"] + (1 - self.s) * gm @ gm.T
    if fr is not None:
      fr["S"] = self.s * fr["S"] + (1 - self.s) * gm.T @ gm

  def step(self, params, grads):
    self.calls += 1
    if self.calls == 1:
      for k, g in grads.items():
        gm = as_matrix(g) if g.ndim >= 2 else g.reshape(-1)
        self.m[k] = np.zeros_like(gm)
        self.v[k] = np.zeros_like(gm)
        if g.ndim >= 2:
          self._stats(k, gm)
          for fac in self.fac[k]:
            if fac is not None:
              fac["Q"] = eigh_desc(fac["S"])
      return dict(params)
    t = self.calls - 1
    out = {}
    for k, p in params.items():
      g = grads[k]
      gm = as_matrix(g) if g.ndim >= 2 else g.reshape(-1)
      fl, fr = self.fac[k]
      gr = gm
      if fl is not None:
        gr = fl["Q"].T @ gr
      if fr is not None:
        gr = gr @ fr["Q"]
      self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * gr
      self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * gr * gr
      n = self.m[k] / (np.sqrt(self.v[k]) + self.eps)
      if fl is not None:
        n = fl["Q"] @ n
      if fr is not None:
        n = n @ fr["Q"].T
      step = self.lr * np.sqrt(1 - self.b2 ** t) / (1 - self.b1 ** t)
      newp = p - step * n.reshape(p.shape)
      newp = newp - self.lr * self.wd * newp
      out[k] = newp
      if g.ndim >= 2:
        self._stats(k, gm)
        if t % self.f == 0:
          for axis, fac in enumerate((fl, fr)):
            if fac is None:
              continue
            q, s = fac["Q"], fac["S"]
            est = np.diag(q.T @ s @ q)
            order = np.argsort(-est, kind="stable")
            q = q[:, order]
            self.v[k] = self.v[k][order, :] if axis == 0 else self.v[k][:, order]
            nq, r = np.linalg.qr(s @ q)
            fac["Q"] = _canon(nq, np.diag(r))
    return out


def norm_lower_bound(a):
  max_abs = np.max(np.abs(a))
  if max_abs == 0:
    return 0.0
  a = a / max_abs
  aa = a * a
  col, row = aa.sum(0), aa.sum(1)
  i, j = np.argmax(col), np.argmax(row)
  if col[i] > row[j]:
    x = a[:, i] @ a
    return max_abs * np.linalg.norm((x / np.linalg.norm(x)) @ a.T)
  x = a @ a[j]
  return max_abs * np.linalg.norm(a.T @ (x / np.linalg.norm(x)))


class PsgdKronRef:
  """PSGD-Kron whitening (algorithm reference sec. 2.10). Noise and coin flips are passed in."""

  def __init__(self, params, *, lr, b1=0.9, wd=0.0, lr_p=0.1, max_tri=8192, init_scale=1.0, clip=1.1):
    self.__dict__.update(lr=lr, b1=b1, wd=wd, lr_p=lr_p, clip=clip)
    self.t = 0
    self.m = {k: np.zeros_like(p) for k, p in params.items()}
    self.Q = {}
    for k, p in params.items():
      mat = as_matrix(p)
      if mat is None:
        self.Q[k] = [np.full(max(1, p.size), init_scale)]
      else:
        s = init_scale ** 0.5
        self.Q[k] = [np.eye(d) * s if 1 < d <= max_tri else np.full(d, s) for d in mat.shape]

  def preconditioned(self, k, h):
    q = self.Q[k]
    if len(q) == 1:
      return q[0] ** 2 * h
    ql, qr = q
    x = ql[:, None] ** 2 * h if ql.ndim == 1 else ql.T @ ql @ h
    return x * qr[None, :] ** 2 if qr.ndim == 1 else x @ qr.T @ qr

  def refit(self, k, h, v):
    tiny = np.finfo(np.float64).tiny
    q = self.Q[k]
    if len(q) == 1:
      a, b = (q[0] * h) ** 2, (v / q[0]) ** 2
      q[0] = q[0] - self.lr_p / (np.max(np.abs(a + b)) + tiny) * (a - b) * q[0]
      return
    ql, qr = q
    a = (ql[:, None] * h if ql.ndim == 1 else ql @ h)
    a = a * qr[None, :] if qr.ndim == 1 else a @ qr.T
    b = v / ql[:, None] if ql.ndim == 1 else scipy.linalg.solve_triangular(ql.T, v, lower=True)
    b = b / qr[None, :] if qr.ndim == 1 else scipy.linalg.solve_triangular(qr.T, b.T, lower=True).T
    new = []
    for axis, qi in enumerate(q):
      aa, bb = (a, b) if axis == 0 else (a.T, b.T)
      if qi.ndim == 1:
        t1, t2 = (aa * aa).sum(1), (bb * bb).sum(1)
        new.append(qi - self.lr_p / (np.max(np.abs(t1 + t2)) + tiny) * (t1 - t2) * qi)
      else:
        t1, t2 = aa @ aa.T, bb @ bb.T
        new.append(qi - self.lr_p / (norm_lower_bound(t1 + t2) + tiny) * np.triu(t1 - t2) @ qi)
    self.Q[k] = new

  def step(self, params, grads, do_refit, noise):
    """``noise[k]``: the probe for leaf k, in the leaf's matrix (or flat vector) shape."""
    self.t += 1
    out = {}
    for k, p in params.items():
      g = grads[k]
      self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
      h = self.m[k] / (1 - self.b1 ** self.t)
      h = as_matrix(h) if h.ndim >= 2 else h.reshape(-1)
      if do_refit:
        self.refit(k, h, noise[k])
      u = self.preconditioned(k, h)
      if self.clip is not None:
        u = u * min(1.0, self.clip / np.sqrt(np.mean(u * u)))
      u = u.reshape(p.shape)
      decay = self.wd * p if p.ndim >= 2 else 0.0
      out[k] = p - self.lr * (u + decay)
    return out
