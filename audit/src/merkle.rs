//! The Merkle tree over a log's records (RFC 9162 §2.1, the hashing of RFC 6962):
//! `leaf = SHA-256(0x00 || line)`, `node = SHA-256(0x01 || left || right)`, where `line` is a
//! record line's bytes without its `\n`; the root of the empty tree is `SHA-256("")`.
//!
//! Written here rather than taken from a crate: the writer keeps only the tree's frontier (the
//! roots of its perfect subtrees, at most 64 hashes) in a small file and extends it at each
//! checkpoint, and the verifier streams a log of millions of records through it; the Merkle
//! crates at hand keep every leaf of the tree in memory. Inclusion and consistency proofs follow
//! RFC 9162 §2.1.3 and §2.1.4 step by step, and the tests check them against a tree computed
//! from the definition (`mth`).

use aws_lc_rs::digest;

pub type Hash = [u8; 32];

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The leaf hash of a record line (without its `\n`).
pub fn leaf(line: &[u8]) -> Hash {
    sha256(&[&[0], line])
}

/// An inner node's hash.
pub fn node(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[1], left, right])
}

/// The root of the empty tree.
pub fn empty_root() -> Hash {
    sha256(&[])
}

/// The tree's frontier: the roots of the perfect subtrees that make up a tree of `size` leaves,
/// largest (leftmost) first, one per bit set in `size`. Enough to append leaves and compute the
/// root, nothing more.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// A frontier as the writer's tree file keeps it; `None` if the hashes do not fit the size.
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Option<Frontier> {
        (hashes.len() == size.count_ones() as usize).then_some(Frontier { size, hashes })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        let mut n = self.size;
        // Each trailing 1 bit of the old size is a perfect subtree the new leaf completes.
        while n & 1 == 1 {
            let left = self.hashes.pop().expect("one hash per bit set");
            h = node(&left, &h);
            n >>= 1;
        }
        self.hashes.push(h);
        self.size += 1;
    }

    /// The root of the tree of `size()` leaves.
    pub fn root(&self) -> Hash {
        let mut it = self.hashes.iter().rev();
        let Some(last) = it.next() else { return empty_root() };
        it.fold(*last, |right, left| node(left, &right))
    }
}

/// The root over `leaves` (RFC 9162 MTH, over leaf hashes).
pub fn root(leaves: &[Hash]) -> Hash {
    let mut f = Frontier::new();
    for l in leaves {
        f.push(*l);
    }
    f.root()
}

/// The largest power of two smaller than `n` (`n` ≥ 2).
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// A tree known by the frontier of its first leaves (the records retention deleted) and the
/// leaf hashes after them: enough for every proof about the leaves after the prefix (each node
/// a proof needs over the prefix alone is one of the frontier's).
pub struct Partial<'a> {
    pub prefix: &'a Frontier,
    pub leaves: &'a [Hash],
}

impl Partial<'_> {
    pub fn size(&self) -> usize {
        self.prefix.size() as usize + self.leaves.len()
    }

    /// The root over leaves `lo..hi` (RFC 9162 MTH), if the tree knows it.
    fn range(&self, lo: usize, hi: usize) -> Option<Hash> {
        let m = self.prefix.size() as usize;
        if lo >= m {
            return Some(root(&self.leaves[lo - m..hi - m]));
        }
        if hi <= m {
            // One of the frontier's subtrees, or unknown.
            let mut start = 0usize;
            for (i, h) in self.prefix.hashes().iter().enumerate() {
                let width = 1usize << self.block_bits(i);
                if start == lo && start + width == hi {
                    return Some(*h);
                }
                start += width;
            }
            return None;
        }
        let k = split(hi - lo);
        Some(node(&self.range(lo, lo + k)?, &self.range(lo + k, hi)?))
    }

    /// The height of the frontier's `i`-th subtree (largest first).
    fn block_bits(&self, i: usize) -> u32 {
        let size = self.prefix.size();
        (0..64).rev().filter(|b| size >> b & 1 == 1).nth(i).expect("one subtree per bit")
    }

    /// The inclusion proof of leaf `index` in the tree of the first `size` leaves (RFC 9162
    /// §2.1.3.1), if the tree knows the nodes it takes.
    pub fn inclusion(&self, index: usize, size: usize) -> Option<Vec<Hash>> {
        fn path(t: &Partial, m: usize, lo: usize, hi: usize, out: &mut Vec<Hash>) -> Option<()> {
            if hi - lo <= 1 {
                return Some(());
            }
            let k = split(hi - lo);
            if m < k {
                path(t, m, lo, lo + k, out)?;
                out.push(t.range(lo + k, hi)?);
            } else {
                path(t, m - k, lo + k, hi, out)?;
                out.push(t.range(lo, lo + k)?);
            }
            Some(())
        }
        if index >= size || size > self.size() {
            return None;
        }
        let mut out = Vec::new();
        path(self, index, 0, size, &mut out)?;
        Some(out)
    }

    /// The consistency proof from the tree of the first `old` leaves to the tree of the first
    /// `size` (RFC 9162 §2.1.4.1), if the tree knows the nodes it takes.
    pub fn consistency(&self, old: usize, size: usize) -> Option<Vec<Hash>> {
        fn sub(t: &Partial, m: usize, lo: usize, hi: usize, b: bool, out: &mut Vec<Hash>) -> Option<()> {
            let n = hi - lo;
            if m == n {
                if !b {
                    out.push(t.range(lo, hi)?);
                }
                return Some(());
            }
            let k = split(n);
            if m <= k {
                sub(t, m, lo, lo + k, b, out)?;
                out.push(t.range(lo + k, hi)?);
            } else {
                sub(t, m - k, lo + k, hi, false, out)?;
                out.push(t.range(lo, lo + k)?);
            }
            Some(())
        }
        if old > size || size > self.size() {
            return None;
        }
        let mut out = Vec::new();
        if old > 0 && old < size {
            sub(self, old, 0, size, true, &mut out)?;
        }
        Some(out)
    }
}

/// The inclusion proof of leaf `index` in the tree over `leaves` (RFC 9162 §2.1.3.1 PATH).
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Vec<Hash> {
    assert!(index < leaves.len());
    let empty = Frontier::new();
    Partial { prefix: &empty, leaves }.inclusion(index, leaves.len()).expect("every node is known")
}

/// Whether `proof` shows leaf `leaf` at `index` in a tree of `size` leaves with root `root`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// The consistency proof from the tree of the first `old` leaves to the tree over all of
/// `leaves` (RFC 9162 §2.1.4.1 PROOF).
pub fn consistency_proof(leaves: &[Hash], old: usize) -> Vec<Hash> {
    assert!(old <= leaves.len());
    let empty = Frontier::new();
    Partial { prefix: &empty, leaves }.consistency(old, leaves.len()).expect("every node is known")
}

/// Whether `proof` shows that the tree of `size2` leaves with root `root2` extends the tree of
/// `size1` leaves with root `root1` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(size1: u64, size2: u64, proof: &[Hash], root1: &Hash, root2: &Hash) -> bool {
    if size1 > size2 {
        return false;
    }
    if size1 == size2 {
        return proof.is_empty() && root1 == root2;
    }
    if size1 == 0 {
        return proof.is_empty();
    }
    let mut path: Vec<Hash> = proof.to_vec();
    if size1.is_power_of_two() {
        path.insert(0, *root1);
    }
    let Some((first, rest)) = path.split_first() else { return false };
    let (mut fnode, mut snode) = (size1 - 1, size2 - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node(c, &fr);
            sr = node(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && fr == *root1 && sr == *root2
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9162 MTH from its definition, recursively.
    fn mth(d: &[Hash]) -> Hash {
        match d.len() {
            0 => empty_root(),
            1 => d[0],
            n => {
                let k = split(n);
                node(&mth(&d[..k]), &mth(&d[k..]))
            }
        }
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf(format!("record {i}").as_bytes())).collect()
    }

    #[test]
    fn the_frontier_gives_the_root_of_the_definition() {
        let l = leaves(70);
        let mut f = Frontier::new();
        assert_eq!(f.root(), mth(&[]));
        for i in 0..l.len() {
            f.push(l[i]);
            assert_eq!(f.root(), mth(&l[..=i]), "size {}", i + 1);
            assert_eq!(f.hashes().len(), (i + 1).count_ones() as usize);
        }
        assert_eq!(Frontier::from_parts(f.size(), f.hashes().to_vec()), Some(f.clone()));
        assert!(Frontier::from_parts(f.size() + 1, f.hashes().to_vec()).is_none());
    }

    #[test]
    fn rfc6962_hashing() {
        // The empty tree and a one-leaf tree of the empty string (RFC 6962 test values).
        assert_eq!(
            crate::format::hex(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(crate::format::hex(&leaf(b"")), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    }

    #[test]
    fn inclusion_proofs_verify_and_nothing_else_does() {
        for n in 1..=33 {
            let l = leaves(n);
            let r = mth(&l);
            for i in 0..n {
                let p = inclusion_proof(&l, i);
                assert!(verify_inclusion(&l[i], i as u64, n as u64, &p, &r), "{i} of {n}");
                assert!(!verify_inclusion(&l[(i + 1) % n], i as u64, n as u64, &p, &r) || n == 1);
                let mut other_root = r;
                other_root[5] ^= 1;
                assert!(!verify_inclusion(&l[i], i as u64, n as u64, &p, &other_root));
                assert!(!verify_inclusion(&l[i], n as u64, n as u64, &p, &r));
                if !p.is_empty() {
                    let mut bad = p.clone();
                    bad[0][0] ^= 1;
                    assert!(!verify_inclusion(&l[i], i as u64, n as u64, &bad, &r));
                }
            }
        }
    }

    #[test]
    fn proofs_over_a_tree_known_by_a_prefix_frontier() {
        let l = leaves(45);
        for m in [0, 1, 5, 8, 13, 32, 44] {
            let mut f = Frontier::new();
            for x in &l[..m] {
                f.push(*x);
            }
            let t = Partial { prefix: &f, leaves: &l[m..] };
            for n in (m + 1)..=45 {
                for i in m..n {
                    assert_eq!(t.inclusion(i, n), Some(inclusion_proof(&l[..n], i)), "{i} of {n} after {m}");
                }
                for old in m.max(1)..=n {
                    assert_eq!(t.consistency(old, n), Some(consistency_proof(&l[..n], old)), "{old} -> {n} after {m}");
                }
            }
        }
    }

    #[test]
    fn consistency_proofs_verify_and_nothing_else_does() {
        for n in 1..=33 {
            let l = leaves(n);
            let r2 = mth(&l);
            for m in 1..=n {
                let r1 = mth(&l[..m]);
                let p = consistency_proof(&l, m);
                assert!(verify_consistency(m as u64, n as u64, &p, &r1, &r2), "{m} -> {n}");
                let mut other = l[..m].to_vec();
                other[m - 1][0] ^= 1;
                assert!(!verify_consistency(m as u64, n as u64, &p, &mth(&other), &r2) || p.is_empty() && m == n);
                let mut other_root = r2;
                other_root[5] ^= 1;
                assert!(!verify_consistency(m as u64, n as u64, &p, &r1, &other_root));
            }
        }
    }
}
