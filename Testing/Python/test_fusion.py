"""Fusion of overlapping patches with known votes (method.md §3 T14)."""

import numpy as np
import torch

from dccseg.evaluation import dice
from dccseg.fusion import VoteAccumulator, fuse, fuse_patches
from dccseg.inference.pipeline import fusion_prior
from dccseg.preprocess import resample_like
from dccseg.volume import Volume

GRID = (1, 8, 8)


def _patch(value: float, size: int = 4) -> torch.Tensor:
    return torch.full((size, size), value)


def test_majority_threshold_is_strictly_above_one_half():
    # three patches of organ 1 centred at the same pixel: votes 2/3 -> foreground
    centers = torch.tensor([[0, 4, 4]] * 3)
    probs = torch.stack([_patch(0.9), _patch(0.8), _patch(0.2)])
    labels = fuse_patches(GRID, centers, torch.tensor([1, 1, 1]), probs)
    assert labels[0, 2:6, 2:6].eq(1).all() and labels.sum() == 16
    # two patches, one for and one against: vote exactly 0.5 -> background
    labels = fuse_patches(GRID, centers[:2], torch.tensor([1, 1]), torch.stack([_patch(0.9), _patch(0.1)]))
    assert labels.sum() == 0
    # a probability of exactly 0.5 is not a foreground vote
    assert fuse_patches(GRID, centers[:1], torch.tensor([1]), _patch(0.5)[None]).sum() == 0


def test_votes_are_counted_per_pixel_over_covering_patches():
    # patch A covers columns 0..3, patch B columns 2..5 of rows 0..3; A says fg, B says bg
    centers = torch.tensor([[0, 2, 2], [0, 2, 4]])
    labels = fuse_patches(GRID, centers, torch.tensor([3, 3]), torch.stack([_patch(1.0), _patch(0.0)]))
    assert labels[0, 0:4, 0:2].eq(3).all()  # covered by A only: 1/1
    assert labels[0, 0:4, 2:4].eq(0).all()  # covered by both: 1/2
    assert labels[0, 0:4, 4:6].eq(0).all()  # covered by B only: 0/1


def test_uncovered_pixels_stay_background():
    labels = fuse_patches(GRID, torch.tensor([[0, 2, 2]]), torch.tensor([5]), _patch(1.0)[None])
    assert labels[0, :4, :4].eq(5).all()
    assert labels.sum() == 16 * 5


def test_conflict_goes_to_the_highest_mean_probability():
    centers = torch.tensor([[0, 4, 4], [0, 4, 4]])
    probs = torch.stack([_patch(0.7), _patch(0.9)])
    labels = fuse_patches(GRID, centers, torch.tensor([2, 7]), probs)
    assert labels[0, 2:6, 2:6].eq(7).all()
    labels = fuse_patches(GRID, centers, torch.tensor([2, 7]), probs.flip(0))
    assert labels[0, 2:6, 2:6].eq(2).all()


def test_equal_mean_probability_goes_to_the_larger_vote_count():
    # organ 4: two patches 0.75 and 0.75 -> mean 0.75, 2 fg votes; organ 1: one patch 0.75 -> 1 vote
    centers = torch.tensor([[0, 4, 4], [0, 4, 4], [0, 4, 4]])
    probs = torch.stack([_patch(0.75), _patch(0.75), _patch(0.75)])
    labels = fuse_patches(GRID, centers, torch.tensor([1, 4, 4]), probs)
    assert labels[0, 2:6, 2:6].eq(4).all()


def _naive_fusion(grid, centers, organs, probs):
    """Pixel-by-pixel reference of §1.8 fusion."""
    size, half = probs.shape[-1], probs.shape[-1] // 2
    stats = {}  # (organ, z, y, x) -> [coverage, fg votes, prob sum]
    for (z, cy, cx), organ, patch in zip(centers.tolist(), organs.tolist(), probs):
        for i in range(size):
            for j in range(size):
                y, x = cy - half + i, cx - half + j
                if 0 <= y < grid[1] and 0 <= x < grid[2]:
                    entry = stats.setdefault((organ, z, y, x), [0, 0, 0.0])
                    p = float(patch[i, j])  # multiples of 1/8 sum exactly in float32 and float64
                    entry[0] += 1
                    entry[1] += p > 0.5
                    entry[2] += p
    labels = torch.zeros(grid, dtype=torch.uint8)
    best = {}
    for (organ, z, y, x), (cov, fg, psum) in sorted(stats.items()):
        if 2 * fg <= cov:
            continue
        key = (psum / cov, fg)
        if (z, y, x) not in best or key > best[(z, y, x)]:
            best[(z, y, x)] = key
            labels[z, y, x] = organ
    return labels


def test_batched_accumulation_matches_a_naive_pixel_loop_including_borders():
    torch.manual_seed(0)
    grid = (3, 10, 12)
    centers = torch.randint(0, 10, (40, 3)) % torch.tensor([3, 10, 12])
    organs = torch.randint(1, 4, (40,))
    probs = torch.randint(0, 9, (40, 6, 6)) / 8.0  # exact binary fractions: ties and 0.5 votes are exact and frequent
    expected = _naive_fusion(grid, centers, organs, probs)
    assert torch.equal(fuse_patches(grid, centers, organs, probs), expected)
    accumulators = []
    for organ in (1, 2, 3):
        chosen = organs == organ
        acc = VoteAccumulator(organ, centers[chosen], 6, grid)
        half = int(chosen.sum()) // 2
        acc.add(centers[chosen][:half], probs[chosen][:half])
        acc.add(centers[chosen][half:], probs[chosen][half:])
        accumulators.append(acc)
    assert torch.equal(fuse(grid, accumulators), expected)


def test_with_a_trust_band_the_prior_decides_where_the_patches_are_unsure():
    # one patch of organ 2 over rows/cols 2..5: confident fg (0.9) on the left half, unsure (0.6 / 0.35) and confident bg (0.02) on the right
    prob = _patch(0.9)
    prob[:, 2] = 0.6
    prob[:2, 3], prob[2:, 3] = 0.35, 0.02
    acc = VoteAccumulator(2, torch.tensor([[0, 4, 4]]), 4, GRID)
    acc.add(torch.tensor([[0, 4, 4]]), prob[None])
    prior = torch.zeros(GRID, dtype=torch.uint8)
    prior[0, 2:6, 4:8] = 2  # the prior holds the right half and more
    plain = fuse(GRID, [acc])
    trusted = fuse(GRID, [acc], prior, trust=0.3)
    assert plain[0, 2:6, 2:5].eq(2).all() and plain[0, 2:6, 5].eq(0).all()
    assert trusted[0, 2:6, 2:4].eq(2).all()  # confident: claimed without the prior
    assert trusted[0, 2:6, 4].eq(2).all()  # unsure (0.6), prior says yes
    assert trusted[0, 2:4, 5].eq(2).all() and trusted[0, 4:6, 5].eq(0).all()  # 0.35 >= 0.3 with the prior; 0.02 is confident background
    assert trusted[0, 2:6, 6:8].eq(0).all()  # no patch covers it: the prior alone never claims a pixel
    assert torch.equal(fuse(GRID, [acc], prior, trust=None), plain)


def test_the_prior_the_fusion_keeps_is_the_smooth_restoration_not_a_blocky_copy():
    """A ball on a 5 mm coarse grid, kept on a 1 mm refine grid: closer to the true ball than nearest neighbour gives."""

    def ball(step: float, n: int) -> Volume:
        centres = (np.arange(n) + 0.5) * step
        z, y, x = np.meshgrid(centres, centres, centres, indexing="ij")
        inside = (z - 40) ** 2 + (y - 40) ** 2 + (x - 40) ** 2 <= 22 ** 2
        return Volume(inside.astype(np.uint8) * 6, (step,) * 3, (step / 2,) * 3, (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))

    coarse, fine = ball(5.0, 16), ball(1.0, 80)
    truth = fine.array == 6
    kept = fusion_prior(coarse, fine)
    assert set(np.unique(kept)) == {0, 6}
    assert dice(kept == 6, truth) > dice(resample_like(coarse, fine, is_label=True).array == 6, truth) + 0.01
