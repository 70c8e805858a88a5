"""Near copies: pages whose text is mostly the same, found in near-linear time.

Each page is reduced to a MinHash signature of its word 3-shingles, and LSH (datasketch)
buckets the signatures so that each page is compared only with the pages that share a band
with it, instead of with every other page.
"""

from __future__ import annotations

import functools
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH

__all__ = ["NearDuplicate", "near_duplicates", "near_groups", "shingle_minhash"]

# A shingle's hash is the polynomial sum(word_hash * M**k) over its words, wrapping modulo
# 2**64 in uint64. M = 1,000,003 is the prime multiplier of CPython's classic string and
# tuple hash: odd, so multiplying by it is a bijection modulo 2**64 (no earlier word is
# lost), and large enough that word order changes the result (`a b c` is not `c b a`).
_SHINGLE_MULTIPLIER = np.uint64(1_000_003)
# datasketch's "affine32" scheme takes 32-bit input hashes (its `hashfunc` docs; a wider
# value is refused), the same width as the crc32 word hashes: keep the low 32 bits.
_HASH_MASK_32 = np.uint64(0xFFFFFFFF)


def shingle_minhash(words: Sequence[str], num_perm: int, size: int) -> np.ndarray:
    """MinHash values (`num_perm` of them) of the `size`-word shingles of a page's words."""
    # crc32 per word in C, then shingle hashes combined with integer arithmetic: hashing each
    # shingle string with datasketch's default sha1 made the 10,000-file benchmark 5x slower.
    known = {word: zlib.crc32(word.encode()) for word in set(words)}
    hashes = np.fromiter((known[word] for word in words), np.uint64, len(words))
    if len(hashes) >= size:
        combined = np.zeros(len(hashes) - size + 1, dtype=np.uint64)
        for offset in range(size):
            combined = (
                combined * _SHINGLE_MULTIPLIER + hashes[offset : len(hashes) - size + 1 + offset]
            )
        shingles = np.unique(combined & _HASH_MASK_32)
    else:
        shingles = np.unique(hashes)
    minhash = _template(num_perm).copy()
    if len(shingles):
        minhash.update_batch(shingles.tolist())
    return np.asarray(minhash.hashvalues)


@functools.cache
def _template(num_perm: int) -> MinHash:
    # Drawing the permutations costs more than hashing a page; draw them once per process.
    return MinHash(num_perm=num_perm, seed=1, hashfunc=int, scheme="affine32")


@dataclass(frozen=True, slots=True)
class NearDuplicate:
    """Two pages whose bodies share most of their word 3-shingles (estimated Jaccard)."""

    first: str
    second: str
    jaccard: float


def near_duplicates(
    pages: Sequence[tuple[str, np.ndarray]], threshold: float
) -> list[NearDuplicate]:
    """Find page pairs whose estimated shingle Jaccard is at least `threshold`.

    Args:
        pages: (path, `shingle_minhash` values) of every page to compare.
        threshold: the least estimated Jaccard of a pair (LSH bands are tuned for it).

    Returns:
        The pairs, each once, in input order, with the estimate from all permutations.
    """
    if not pages:
        return []
    lsh = MinHashLSH(threshold=threshold, num_perm=len(pages[0][1]))
    # LeanMinHash wraps stored values without drawing permutations (MinHash would, per page).
    sketches = [LeanMinHash(seed=1, hashvalues=values, scheme="affine32") for _, values in pages]
    for index, sketch in enumerate(sketches):
        lsh.insert(index, sketch)
    found: list[NearDuplicate] = []
    for index, sketch in enumerate(sketches):
        for other in lsh.query(sketch):
            if other > index:
                jaccard = float(np.mean(pages[index][1] == pages[other][1]))
                if jaccard >= threshold:
                    found.append(NearDuplicate(pages[index][0], pages[other][0], jaccard))
    return found


def near_groups(near: Iterable[NearDuplicate], allowed: set[str]) -> list[list[str]]:
    """Connected groups of near-duplicate pages (union-find over the LSH pairs)."""
    parent: dict[str, str] = {}

    def root(path: str) -> str:
        while parent.setdefault(path, path) != path:
            parent[path] = parent[parent[path]]
            path = parent[path]
        return path

    for pair in near:
        if pair.first in allowed and pair.second in allowed:
            parent[root(pair.first)] = root(pair.second)
    groups: dict[str, list[str]] = defaultdict(list)
    for path in list(parent):
        groups[root(path)].append(path)
    return [sorted(group) for group in groups.values() if len(group) > 1]
