"""The compact L-BFGS against torch.optim.LBFGS, and its float16 history."""
from __future__ import annotations

import torch

from dreamrender.server.engine._lbfgs import minimize


def _problem(seed: int = 0):
    """A smooth, non-quadratic loss on a 3x16x16 'image' (a Rosenbrock-like coupling term makes
    the curvature vary, so the history matters)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(768, 768, generator=g) / 30
    h = a @ a.T + torch.eye(768) * 0.1
    b = torch.randn(768, generator=g)
    x0 = torch.randn(3, 16, 16, generator=g) * 10

    def loss(x: torch.Tensor) -> torch.Tensor:
        v = x.reshape(-1)
        return 0.5 * v @ h @ v - b @ v + 0.01 * ((v[1:] - v[:-1] ** 2) ** 2).sum()

    return x0, loss


def _ours(iterations: int, history: int, storage: torch.dtype, first_step: str = "l1") -> tuple[torch.Tensor, list[float]]:
    x0, loss = _problem()
    x = x0.clone().requires_grad_(True)
    seen: list[float] = []

    def closure() -> torch.Tensor:
        value = loss(x)
        value.backward()
        seen.append(float(value.detach()))
        return value

    minimize(x, closure, iterations=iterations, lr=1.0, history=history, storage=storage, first_step=first_step)
    return x.detach(), seen


def _torch(iterations: int, history: int) -> tuple[torch.Tensor, list[float]]:
    x0, loss = _problem()
    x = x0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=iterations, max_eval=iterations, history_size=history,
                            tolerance_grad=-1, tolerance_change=-1)
    seen: list[float] = []

    def closure() -> torch.Tensor:
        opt.zero_grad()
        value = loss(x)
        value.backward()
        seen.append(float(value.detach()))
        return value

    opt.step(closure)
    return x.detach(), seen


def test_float32_history_follows_torchs_lbfgs():
    for history in (3, 10):  # a full history that rolls over, and one that does not
        mine, mine_losses = _ours(25, history, torch.float32)
        ref, ref_losses = _torch(25, history)
        assert len(mine_losses) == len(ref_losses) == 25
        torch.testing.assert_close(torch.tensor(mine_losses), torch.tensor(ref_losses), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(mine, ref, rtol=1e-4, atol=1e-3)
        assert ref_losses[-1] < ref_losses[0] * 0.1  # it did optimise


def test_the_engines_first_step_moves_the_largest_element_by_lr():
    x = torch.zeros(4, requires_grad=True)
    g = torch.tensor([4.0, -2.0, 1.0, 0.5])

    def closure() -> torch.Tensor:
        value = (x * g).sum()
        value.backward()
        return value

    minimize(x, closure, iterations=1, lr=1.0, history=3)  # one step, not evaluated
    torch.testing.assert_close(x.detach(), -g / 4.0)  # torch's would be -g / 7.5 (the L1 norm)
    _, ours = _ours(25, 10, torch.float32, first_step="max")
    assert ours[-1] < ours[0] * 0.1  # and the run still optimises


def test_float16_history_stays_close_and_is_stored_small():
    _, f32 = _ours(25, 10, torch.float32)
    _, f16 = _ours(25, 10, torch.float16)
    assert abs(f16[-1] - f32[-1]) <= 0.01 * abs(f32[0] - f32[-1])


def test_pairs_are_scaled_into_float16s_range():
    from dreamrender.server.engine._lbfgs import _Pair

    big = torch.tensor([3e6, -1e5, 2.0])  # far past float16's 65504
    p = _Pair(big, big * 1e-9, 1.0, torch.float16)
    assert p.s.dtype == torch.float16 and torch.isfinite(p.s).all()
    torch.testing.assert_close(p.s.float() * p.s_scale, big, rtol=1e-3, atol=1e-3 * 3e6)  # precision relative to the largest
    torch.testing.assert_close(p.y.float() * p.y_scale, big * 1e-9, rtol=1e-3, atol=1e-3 * 3e-3)


def test_a_zero_gradient_is_a_standstill_not_an_error():
    x = torch.ones(3, 4, 4, requires_grad=True)

    def closure() -> torch.Tensor:
        value = (x * 0).sum()
        value.backward()
        return value

    minimize(x, closure, iterations=4, lr=1.0, history=3)
    assert torch.equal(x.detach(), torch.ones(3, 4, 4))
