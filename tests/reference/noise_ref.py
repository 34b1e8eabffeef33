"""Float64 NumPy references for the noise family, written from the papers (no gradtx import).

The Gaussian noise is supplied from outside: each reference takes ``noise(t)``, a function of the
0-based step returning a dict of standard normal arrays (Entropy-SGD: ``noise(t, l)`` per inner
step), so the update rules are checked exactly, to 1e-10.
"""

import numpy as np


class AnnealedNoiseSgd:
  """g + sqrt(eta / (1 + t)^gamma) xi, then SGD at lr."""

  def __init__(self, eta, gamma, lr, noise):
    self.eta, self.gamma, self.lr, self.noise, self.t = eta, gamma, lr, noise, 0

  def step(self, params, grads):
    z = self.noise(self.t)
    sigma = np.sqrt(self.eta / (1.0 + self.t) ** self.gamma)
    self.t += 1
    return {k: params[k] - self.lr * (grads[k] + sigma * z[k]) for k in params}


class Sgld:
  """Welling & Teh: u = -(lr/2) G g + sqrt(lr T G) xi; pSGLD G = 1/(sqrt(v) + eps), v an EMA of g^2."""

  def __init__(self, lr, temperature, noise, preconditioner=None, decay=0.99, eps=1e-5):
    self.lr, self.temp, self.noise = lr, temperature, noise
    self.pre, self.decay, self.eps = preconditioner, decay, eps
    self.t, self.v = 0, None

  def step(self, params, grads):
    z = self.noise(self.t)
    self.t += 1
    out = {}
    if self.pre == "rmsprop" and self.v is None:
      self.v = {k: np.zeros_like(v) for k, v in params.items()}
    for k in params:
      g = grads[k]
      if self.pre == "rmsprop":
        self.v[k] = self.decay * self.v[k] + (1 - self.decay) * g**2
        G = 1.0 / (np.sqrt(self.v[k]) + self.eps)
      else:
        G = np.ones_like(g)
      out[k] = params[k] - 0.5 * self.lr * G * g + np.sqrt(self.lr * self.temp * G) * z[k]
    return out


class Sghmc:
  """Chen et al.: v = (1 - alpha) v - lr g + sqrt(2 (alpha - beta_hat) lr T) xi; p <- p + v."""

  def __init__(self, lr, friction, temperature, noise, beta_hat=0.0):
    self.lr, self.a, self.temp, self.b, self.noise = lr, friction, temperature, beta_hat, noise
    self.t, self.v = 0, None

  def step(self, params, grads):
    if self.v is None:
      self.v = {k: np.zeros_like(v) for k, v in params.items()}
    z = self.noise(self.t)
    self.t += 1
    scale = np.sqrt(2 * (self.a - self.b) * self.lr * self.temp)
    for k in params:
      self.v[k] = (1 - self.a) * self.v[k] - self.lr * grads[k] + scale * z[k]
    return {k: params[k] + self.v[k] for k in params}


class AdamLangevin:
  """Adam-LMC: u = -lr (g + a m_{t-1} / sqrt(v_{t-1} + lam1)) + sqrt(2 lr T) xi; then the moments."""

  def __init__(self, lr, b1, b2, lam1, a, temperature, noise):
    self.lr, self.b1, self.b2, self.lam1, self.a, self.temp = lr, b1, b2, lam1, a, temperature
    self.noise, self.t, self.m, self.v = noise, 0, None, None

  def step(self, params, grads):
    if self.m is None:
      self.m = {k: np.zeros_like(v) for k, v in params.items()}
      self.v = {k: np.zeros_like(v) for k, v in params.items()}
    z = self.noise(self.t)
    self.t += 1
    out = {}
    for k in params:
      g = grads[k]
      drift = g + self.a * self.m[k] / np.sqrt(self.v[k] + self.lam1)
      out[k] = params[k] - self.lr * drift + np.sqrt(2 * self.lr * self.temp) * z[k]
      self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
      self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * g**2
    return out


class EntropySgd:
  """Entropy-SGD with an inner SGLD loop and an outer Nesterov-momentum step (torch.optim.SGD form).

  ``grad(x)`` is the loss gradient (NumPy); ``noise(t, l)`` the inner noise of outer step t, inner l.
  """

  def __init__(self, grad, noise, lr, momentum, gamma, scoping, inner_steps, inner_lr, alpha, eps_th,
               nesterov=True):
    self.grad, self.noise, self.lr, self.mom = grad, noise, lr, momentum
    self.gamma, self.scoping, self.L, self.eta, self.alpha, self.eps = (
        gamma, scoping, inner_steps, inner_lr, alpha, eps_th)
    self.nesterov, self.t, self.buf = nesterov, 0, None

  def local_entropy_grad(self, x, first_grad):
    g_k = self.gamma * (1 + self.scoping) ** self.t
    xp = {k: v.copy() for k, v in x.items()}
    mu = {k: v.copy() for k, v in x.items()}
    for j in range(self.L):
      g = first_grad if j == 0 else self.grad(xp)
      z = self.noise(self.t, j)
      for k in x:
        dx = g[k] - g_k * (x[k] - xp[k])
        xp[k] = xp[k] - self.eta * dx + np.sqrt(self.eta) * self.eps * z[k]
        mu[k] = (1 - self.alpha) * mu[k] + self.alpha * xp[k]
    return {k: g_k * (x[k] - mu[k]) for k in x}

  def step(self, params, grads):
    d = self.local_entropy_grad(params, grads)
    if self.buf is None:
      self.buf = {k: v.copy() for k, v in d.items()}
    else:
      self.buf = {k: self.mom * self.buf[k] + d[k] for k in d}
    direction = {k: d[k] + self.mom * self.buf[k] for k in d} if self.nesterov else self.buf
    self.t += 1
    return {k: params[k] - self.lr * direction[k] for k in params}


class Welford:
  """Mean and unbiased variance of the params kept after burn-in, one every ``thinning`` steps."""

  def __init__(self, burn_in, thinning):
    self.burn_in, self.thinning, self.samples, self.t = burn_in, thinning, [], 0

  def observe(self, params):
    self.t += 1
    if self.t > self.burn_in and (self.t - self.burn_in - 1) % self.thinning == 0:
      self.samples.append({k: np.asarray(v, np.float64) for k, v in params.items()})

  def moments(self):
    keys = self.samples[0].keys()
    stacked = {k: np.stack([s[k] for s in self.samples]) for k in keys}
    return ({k: v.mean(0) for k, v in stacked.items()}, {k: v.var(0, ddof=1) for k, v in stacked.items()})
