"""Attacks on tiny fixed networks: hand-computed ASMA and DAG steps, PGD balls and boxes, batching, 3D, bad input."""

from __future__ import annotations

import unittest
from dataclasses import dataclass

import numpy as np
import torch
from helpers import INPUT_TYPES
from parameterized import parameterized

from medsecure_transforms.attacks import (
    ASMA,
    BPDA,
    DAG,
    EOT,
    FGSM,
    PGD,
    AttackResult,
    SegmentationAttack,
    apply_defense,
    attack_param,
    dag_active_pixels,
    foreground_iou,
)


def pixelwise(weight: np.ndarray, bias: np.ndarray, dims: int = 2) -> torch.nn.Module:
    """A 1x1 convolution: logits_k(x)_p = sum_c weight[k, c] x_c(p) + bias[k], so every gradient is known by hand."""
    conv = (torch.nn.Conv2d if dims == 2 else torch.nn.Conv3d)(weight.shape[1], weight.shape[0], 1)
    with torch.no_grad():
        conv.weight.copy_(torch.as_tensor(weight, dtype=torch.float32).view(*weight.shape, *([1] * dims)))
        conv.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return conv.eval()


def small_cnn(in_channels: int = 1, classes: int = 2, dims: int = 2, seed: int = 0) -> torch.nn.Module:
    """A tiny convolutional segmenter with spatial context (3x3 kernels), fixed weights."""
    torch.manual_seed(seed)
    conv = torch.nn.Conv2d if dims == 2 else torch.nn.Conv3d
    layers = [conv(in_channels, 6, 3, padding=1), torch.nn.Tanh(), conv(6, classes, 3, padding=1)]
    return torch.nn.Sequential(*layers).eval()


class CountingModel(torch.nn.Module):
    """Wraps a model and counts forward calls."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, x):
        self.calls += 1
        return self.model(x)


def binary_iou(pred: np.ndarray, target: np.ndarray) -> float:
    """Foreground IoU of two 0/1 maps, 1 when both are empty."""
    union = np.logical_or(pred, target).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, target).sum() / union)


# one input channel, two classes: logit_1 - logit_0 = 4 x - 2, so the model predicts 1 where x > 0.5
W = np.array([[-2.0], [2.0]])
B = np.array([1.0, -1.0])


class TestForegroundIoU(unittest.TestCase):
    def test_matches_hand_count_and_empty_convention(self):
        rng = np.random.default_rng(0)
        pred = rng.integers(0, 3, size=(2, 1, 6, 5))
        target = rng.integers(0, 3, size=(2, 1, 6, 5))
        target[1] = 0
        pred[1] = np.where(pred[1] == 2, 1, pred[1])  # class 2 absent from both in sample 1 -> IoU 1 for it
        got = foreground_iou(torch.as_tensor(pred), torch.as_tensor(target), 3).numpy()
        expected = [np.mean([binary_iou(pred[b] == c, target[b] == c) for c in (1, 2)]) for b in range(2)]
        np.testing.assert_allclose(got, expected, rtol=1e-6)


class TestASMA(unittest.TestCase):
    def setUp(self):
        self.model = pixelwise(W, B)
        x = np.array([[0.2, 0.4, 0.6, 0.8], [0.1, 0.45, 0.55, 0.9], [0.3, 0.3, 0.7, 0.7]], dtype=np.float32)
        self.x = x
        self.target = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 1]])
        self.beta, self.tau = 0.05, 0.01

    def hand_steps(self, steps: int) -> np.ndarray:
        """Equation (1) with the L2 term, worked with numpy: grad = W[t] where pred != t, minus 2 (x - x0)."""
        x = self.x.copy()
        for _ in range(steps):
            pred = (4 * x - 2 > 0).astype(int)
            alpha = self.beta * binary_iou(pred == 1, self.target == 1) + self.tau
            grad = np.where(pred != self.target, W[self.target, 0], 0.0) - 2 * (x - self.x)
            x = np.clip(x + alpha * grad, 0, 1)
        return x

    def run_attack(self, max_iter: int) -> AttackResult:
        attack = ASMA(max_iter=max_iter, beta=self.beta, tau=self.tau, target_iou=1.0)
        return attack(self.model, torch.as_tensor(self.x)[None, None], torch.as_tensor(self.target)[None, None])

    def test_first_and_second_step_match_hand_computation(self):
        for steps in (1, 2):
            result = self.run_attack(steps)
            np.testing.assert_allclose(result.adversarial[0, 0].numpy(), self.hand_steps(steps), atol=1e-6)
            self.assertEqual(int(result.iterations[0]), steps)

    def test_multiplier_schedule(self):
        attack = ASMA(beta=1e-6, tau=1e-7)
        iou = torch.tensor([0.0, 0.5, 1.0])
        np.testing.assert_allclose(attack.multiplier(iou).numpy(), [1e-7, 6e-7, 1.1e-6], rtol=1e-6)
        self.assertEqual((attack.beta, attack.tau, attack.max_iter), (1e-6, 1e-7, 2500))

    def test_reaches_target_and_reports_consistent_norms(self):
        result = ASMA(max_iter=300, beta=0.5, tau=0.05, target_iou=0.99)(
            self.model, torch.as_tensor(self.x)[None, None], torch.as_tensor(self.target)[None, None]
        )
        pred = (4 * result.adversarial[0, 0].numpy() - 2 > 0).astype(int)
        self.assertGreaterEqual(binary_iou(pred == 1, self.target == 1), 0.99)
        self.assertAlmostEqual(float(result.target_iou[0]), binary_iou(pred == 1, self.target == 1), places=6)
        delta = result.adversarial[0, 0].numpy() - self.x
        self.assertAlmostEqual(float(result.l2[0]), float(np.linalg.norm(delta)), places=5)
        self.assertAlmostEqual(float(result.linf[0]), float(np.abs(delta).max()), places=6)
        self.assertLess(int(result.iterations[0]), 300)

    def test_stops_at_zero_iterations_when_target_already_predicted(self):
        target = (self.x > 0.5).astype(int)
        result = ASMA(max_iter=10)(self.model, torch.as_tensor(self.x)[None, None], torch.as_tensor(target)[None, None])
        self.assertEqual(int(result.iterations[0]), 0)
        np.testing.assert_array_equal(result.adversarial[0, 0].numpy(), self.x)

    def test_max_linf_projection(self):
        result = ASMA(max_iter=50, beta=0.5, tau=0.05, target_iou=1.0, max_linf=0.03)(
            self.model, torch.as_tensor(self.x)[None, None], torch.as_tensor(self.target)[None, None]
        )
        self.assertLessEqual(float(result.linf[0]), 0.03 + 1e-6)


class TestDAG(unittest.TestCase):
    def test_only_still_correct_pixels_move_by_the_normalised_step(self):
        weight = np.array([[1.0, -0.5], [-1.0, 2.0], [0.5, 0.5]])
        model = pixelwise(weight, np.zeros(3))
        rng = np.random.default_rng(1)
        x = rng.random((1, 2, 5, 6)).astype(np.float32)
        clean = np.einsum("kc,bchw->bkhw", weight, x).argmax(axis=1)[:, None]
        target = rng.integers(0, 3, size=clean.shape)
        gamma = 0.01
        result = DAG(max_iter=1, gamma=gamma)(model, torch.as_tensor(x), torch.as_tensor(target))
        active = (target != clean)[0, 0]
        # gradient at an active pixel: weight[target] - weight[clean]; 0 elsewhere; normalised by its Linf norm
        grad = (weight[target[0, 0]] - weight[clean[0, 0]]).transpose(2, 0, 1) * active
        expected = np.clip(x[0] + gamma * grad / np.abs(grad).max(), 0, 1)
        np.testing.assert_allclose(result.adversarial[0].numpy(), expected, atol=1e-6)
        moved = np.abs(result.adversarial[0].numpy() - x[0]).sum(axis=0) > 0
        self.assertTrue(np.all(moved <= active))

    def test_active_pixels(self):
        pred, labels, target = (
            torch.tensor([[[[a, b, c, d]]]]) for a, b, c, d in [(0, 1, 1, 2), (0, 1, 2, 2), (1, 1, 0, 2)]
        )
        self.assertEqual(dag_active_pixels(pred, labels, target).flatten().tolist(), [True, False, False, False])

    def test_stops_when_no_correct_pixel_is_left(self):
        model = pixelwise(W, B)
        x = torch.full((1, 1, 4, 4), 0.3)
        result = DAG(max_iter=500, gamma=0.03)(model, x, torch.ones(1, 1, 4, 4, dtype=torch.long))
        self.assertEqual(float(result.target_iou[0]), 1.0)
        self.assertEqual(int(result.iterations[0]), 7)  # 0.3 + 6 * 0.03 = 0.48 < 0.5 < 0.51 = 0.3 + 7 * 0.03


class TestPGD(unittest.TestCase):
    @parameterized.expand(
        [
            ("linf_untargeted", "linf", False, 4 / 255, 1 / 255),
            ("linf_targeted", "linf", True, 4 / 255, 1 / 255),
            ("l2_untargeted", "l2", False, 0.5, 0.2),
            ("l2_targeted", "l2", True, 0.5, 0.2),
        ]
    )
    def test_epsilon_ball_and_box(self, _, norm, targeted, epsilon, step):
        model = small_cnn(in_channels=2, classes=3)
        torch.manual_seed(3)
        x = torch.rand(3, 2, 12, 10)
        x[:, :, :3] = 0.0  # voxels on the box edges
        x[:, :, -3:] = 1.0
        y = torch.randint(0, 3, (3, 1, 12, 10))
        result = PGD(epsilon=epsilon, step_size=step, steps=6, norm=norm, targeted=targeted)(model, x, y)
        delta = (result.adversarial - x).flatten(1)
        bound = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
        self.assertTrue(torch.all(bound <= epsilon + 1e-6), bound)
        self.assertTrue(bool(result.adversarial.min() >= 0) and bool(result.adversarial.max() <= 1))
        self.assertTrue(torch.all(bound > 0))

    def test_untargeted_pgd_raises_the_loss_and_targeted_lowers_it(self):
        model = small_cnn(in_channels=1, classes=2)
        x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
        y = model(x).argmax(1, keepdim=True)
        loss = torch.nn.CrossEntropyLoss()
        away = PGD(epsilon=0.1, step_size=0.02, steps=8)(model, x, y).adversarial
        t = 1 - y
        towards = PGD(epsilon=0.1, step_size=0.02, steps=8, targeted=True)(model, x, t).adversarial
        with torch.no_grad():
            self.assertGreater(loss(model(away), y[:, 0]), loss(model(x), y[:, 0]))
            self.assertLess(loss(model(towards), t[:, 0]), loss(model(x), t[:, 0]))

    def test_fgsm_is_one_signed_step(self):
        model = pixelwise(W, B)
        x = torch.tensor([[[[0.2, 0.7]]]])
        y = torch.tensor([[[[0, 1]]]])
        result = FGSM(epsilon=0.1)(model, x, y)
        # untargeted: raise the CE of the true class -> x moves towards the other class: +0.1 then -0.1
        np.testing.assert_allclose(result.adversarial.numpy(), [[[[0.3, 0.6]]]], atol=1e-6)

    def test_seeded_random_start_is_reproducible(self):
        model = small_cnn()
        x = torch.rand(1, 1, 8, 8)
        y = torch.zeros(1, 1, 8, 8, dtype=torch.long)
        a = PGD(steps=1, seed=5)(model, x, y).adversarial
        b = PGD(steps=1, seed=5)(model, x, y).adversarial
        c = PGD(steps=1, seed=6)(model, x, y).adversarial
        self.assertTrue(torch.equal(a, b))
        self.assertFalse(torch.equal(a, c))

    @parameterized.expand(INPUT_TYPES)
    def test_input_types(self, _, convert):
        model = small_cnn()
        x = np.random.default_rng(0).random((1, 1, 8, 8)).astype(np.float32)
        result = FGSM()(model, convert(x), convert(np.zeros((1, 1, 8, 8), dtype=np.int64)))
        self.assertIs(type(result.adversarial), torch.Tensor)
        self.assertEqual(tuple(result.adversarial.shape), (1, 1, 8, 8))


class TestBatchingAnd3D(unittest.TestCase):
    @parameterized.expand(
        [
            ("asma", lambda: ASMA(max_iter=15, beta=0.02, tau=0.002, target_iou=0.9)),
            ("dag", lambda: DAG(max_iter=15, gamma=0.01)),
            ("pgd", lambda: PGD(steps=4, random_start=False)),
        ]
    )
    def test_batched_equals_per_sample(self, _, make_attack):
        model = small_cnn(classes=3)
        generator = torch.Generator().manual_seed(2)
        x = torch.rand(3, 1, 12, 12, generator=generator)
        target = torch.randint(0, 3, (3, 1, 12, 12), generator=generator)
        batched = make_attack()(model, x, target)
        for i in range(3):
            single = make_attack()(model, x[i : i + 1], target[i : i + 1])
            self.assertEqual(int(single.iterations[0]), int(batched.iterations[i]))
            torch.testing.assert_close(single.adversarial[0], batched.adversarial[i], atol=1e-5, rtol=0)
            torch.testing.assert_close(single.target_iou[0], batched.target_iou[i])

    @parameterized.expand(
        [
            ("asma", ASMA(max_iter=5, beta=0.05, tau=0.01)),
            ("dag", DAG(max_iter=5, gamma=0.02)),
            ("pgd_l2", PGD(epsilon=0.5, step_size=0.2, steps=3, norm="l2", targeted=True)),
        ]
    )
    def test_3d_input(self, _, attack):
        model = small_cnn(classes=3, dims=3)
        x = torch.rand(2, 1, 6, 7, 5)
        target = torch.randint(0, 3, (2, 1, 6, 7, 5))
        result = attack(model, x, target)
        self.assertEqual(result.adversarial.shape, x.shape)
        self.assertEqual(result.target_iou.shape, (2,))
        self.assertTrue(torch.all(result.linf > 0))


class TestBadInput(unittest.TestCase):
    def setUp(self):
        self.model = CountingModel(small_cnn())
        self.x = torch.rand(2, 1, 8, 8)
        self.y = torch.zeros(2, 1, 8, 8, dtype=torch.long)

    def assert_rejected_before_iterating(self, attack, x, y, message):
        with self.assertRaisesRegex(ValueError, message):
            attack(self.model, x, y)
        self.assertLessEqual(self.model.calls, 1)  # at most the shape check, never an iteration

    def test_mismatched_target_shape(self):
        self.assert_rejected_before_iterating(ASMA(), self.x, self.y[:, :, :4], "target must have shape")

    def test_nan_input(self):
        x = self.x.clone()
        x[0, 0, 1, 1] = float("nan")
        self.assert_rejected_before_iterating(DAG(), x, self.y, "NaN")

    def test_model_without_segmentation_logits(self):
        pooled = torch.nn.Sequential(small_cnn(), torch.nn.AdaptiveAvgPool2d(1))
        with self.assertRaisesRegex(ValueError, "model must return logits"):
            PGD()(pooled, self.x, self.y)

    def test_target_class_out_of_range(self):
        self.assert_rejected_before_iterating(ASMA(), self.x, self.y + 2, "target classes")

    @parameterized.expand(
        [
            ("pgd_eps", lambda: PGD(epsilon=0.0)),
            ("fgsm_eps", lambda: FGSM(epsilon=-0.1)),
            ("pgd_norm", lambda: PGD(norm="l1")),
            ("asma_iou", lambda: ASMA(target_iou=0.0)),
            ("dag_gamma", lambda: DAG(gamma=0)),
        ]
    )
    def test_bad_parameters(self, _, make):
        with self.assertRaises(ValueError):
            make()


@dataclass(eq=False)
class Nudge(SegmentationAttack):
    """A one-parameter attack declared like the package's: ``size`` > 0, added to every voxel."""

    size: float = attack_param(0.1, float, lambda v: v > 0, "> 0")

    def _attack(self, model, images, target, logits):
        return self._box(images + self.size), torch.ones(images.shape[0], dtype=torch.long)


class TestDeclaredParameters(unittest.TestCase):
    def test_params_conversion_and_checks_come_from_the_declaration(self):
        attack = Nudge(1, seed=3, clip=(0, 2))
        self.assertEqual(attack.params(), {"name": "Nudge", "clip": (0.0, 2.0), "seed": 3, "size": 1.0})
        self.assertIsInstance(attack.size, float)
        with self.assertRaisesRegex(ValueError, "size must be > 0, got -1"):
            Nudge(-1)
        with self.assertRaisesRegex(ValueError, r"clip must be \(low, high\) with low < high"):
            Nudge(clip=(1, 0))
        result = attack(small_cnn(), torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4, dtype=torch.long))
        self.assertEqual(result.params["size"], 1.0)
        torch.testing.assert_close(result.adversarial, torch.ones(1, 1, 4, 4))

    def test_params_order_is_stable(self):  # reproduce scripts key their caches on json.dumps(attack.params())
        self.assertEqual(
            list(PGD().params()),
            ["name", "clip", "seed", "epsilon", "step_size", "steps", "norm", "targeted", "random_start"],
        )
        self.assertEqual(
            list(ASMA().params()), ["name", "clip", "seed", "max_iter", "beta", "tau", "target_iou", "max_linf"]
        )


class TestAdaptive(unittest.TestCase):
    def setUp(self):
        self.model = small_cnn(classes=2)
        self.x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(4))

    def test_bpda_forward_is_defended_and_backward_is_identity(self):
        quantise = lambda image: (image * 4).round() / 4  # noqa: E731  non-differentiable defense
        wrapped = BPDA(self.model, quantise)
        x = self.x.clone().requires_grad_(True)
        out = wrapped(x)
        torch.testing.assert_close(out, self.model(quantise(self.x)))
        (grad,) = torch.autograd.grad(out[:, 1].sum(), x)
        xd = quantise(self.x).requires_grad_(True)
        (expected,) = torch.autograd.grad(self.model(xd)[:, 1].sum(), xd)
        torch.testing.assert_close(grad, expected)

    def test_bpda_backward_through_approximation(self):
        wrapped = BPDA(self.model, lambda image: (image * 4).round() / 4, approx=lambda x: 0.5 * x, per_sample=False)
        x = self.x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(wrapped(x)[:, 1].sum(), x)
        xd = ((self.x * 4).round() / 4).requires_grad_(True)
        (expected,) = torch.autograd.grad(self.model(xd)[:, 1].sum(), xd)
        torch.testing.assert_close(grad, 0.5 * expected)

    def test_eot_averages_draws_and_is_seeded(self):
        noise = lambda image: image + 0.1 * torch.randn_like(image)  # noqa: E731
        torch.manual_seed(0)
        mean = EOT(self.model, noise, samples=3)(self.x)
        torch.manual_seed(0)
        draws = [self.model(torch.stack([noise(im) for im in self.x])) for _ in range(3)]
        torch.testing.assert_close(mean, sum(draws) / 3)
        a = PGD(steps=2, seed=1)(EOT(self.model, noise, samples=2), self.x, torch.zeros(2, 1, 8, 8, dtype=torch.long))
        b = PGD(steps=2, seed=1)(EOT(self.model, noise, samples=2), self.x, torch.zeros(2, 1, 8, 8, dtype=torch.long))
        self.assertTrue(torch.equal(a.adversarial, b.adversarial))

    def test_apply_defense_rejects_shape_change(self):
        with self.assertRaisesRegex(ValueError, "keep the image shape"):
            apply_defense(lambda image: image[:, :4], self.x)


if __name__ == "__main__":
    unittest.main()
