//! Materializing a plan: imported CAs as read, generated CAs taken from the key state when
//! their spec is unchanged, and generated anew otherwise.

use std::collections::BTreeMap;

use rcgen::KeyPair;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::parallel;
use crate::pki::{self, Algorithm, CaIssuer, CaMaterial, GenerateSpec, PkiError};
use crate::plan::{IntermediateInput, Plan, RootInput};
use crate::state::{Entry, Generation, KeyState, StateError, StateId};

/// Why materializing a plan failed.
#[derive(Debug, thiserror::Error)]
pub enum MaterialsError {
    /// Generating, signing or reading a certificate failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// An imported intermediate's key in the key state does not fit the plan.
    #[error(transparent)]
    State(#[from] StateError),
    /// A certificate must be (re)generated but its issuer's key is locked.
    #[error(
        "{id} must be (re)generated, but its issuer's key is in the encrypted key state, which no identity opened"
    )]
    IssuerLocked {
        /// The certificate to generate.
        id: StateId,
    },
}

/// A signing CA as istiod will load it.
#[derive(Clone)]
pub struct Signer {
    /// The signing CA (certificate and key).
    pub cert: CaMaterial,
    /// `cert-chain.pem`: the signing cert, then its issuers up to the root.
    pub chain: Vec<u8>,
}

/// One cluster's signing CAs.
#[derive(Clone)]
pub struct ClusterMaterials {
    /// The cluster.
    pub name: String,
    /// Signs phases 1–2 (A's intermediate).
    pub current: Signer,
    /// Signs phases 3–4 (B's intermediate).
    pub new: Signer,
}

/// Every certificate and key a render needs.
#[derive(Clone)]
pub struct Materials {
    /// The exact bytes of today's `root-cert.pem` (phase 1).
    pub current_bundle: Vec<u8>,
    /// The root that signs the current intermediates.
    pub current_root: CaMaterial,
    /// Every certificate of the current bundle (DER), in file order.
    pub current_roots: Vec<Vec<u8>>,
    /// The new root's bundle bytes (phase 4).
    pub new_bundle: Vec<u8>,
    /// The new root (B).
    pub new_root: CaMaterial,
    /// Each cluster's signers, in plan order.
    pub clusters: Vec<ClusterMaterials>,
    /// State after this run (reused and newly generated entries only).
    pub state: KeyState,
    /// Ids generated in this run.
    pub generated: Vec<StateId>,
}

/// Reports each CA key as it is generated (id, done, total), on the thread that called
/// [`materialize`]. Used for progress output.
pub type Progress<'a> = &'a mut dyn FnMut(&str, usize, usize);

fn spec_hash(spec: &GenerateSpec, issuer: Option<&CaMaterial>, namespace: &str) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(spec).expect("GenerateSpec serializes"));
    if let Some(i) = issuer {
        h.update(b"issuer:");
        h.update(&i.der);
        h.update(namespace.as_bytes());
    }
    pki::hex(&h.finalize())
}

/// One generated CA of the plan. Roots come first (`root-current`, `root-new`), then each
/// cluster's `current` and `new` intermediates, in plan order.
struct Slot<'p> {
    id: StateId,
    spec: &'p GenerateSpec,
    /// Which root this is (0 current, 1 new), for a root.
    root: Option<usize>,
    /// Which root signs it (0 current, 1 new), for an intermediate.
    issuer: Option<usize>,
    /// Taken from the key state unchanged.
    reused: Option<CaMaterial>,
}

/// Relative cost of generating a key, so the slowest keys are handed out first.
fn keygen_cost(algorithm: Algorithm) -> u8 {
    match algorithm {
        Algorithm::Rsa4096 => 4,
        Algorithm::Rsa3072 => 3,
        Algorithm::Rsa2048 => 2,
        Algorithm::EcdsaP384 => 1,
        Algorithm::EcdsaP256 => 0,
    }
}

/// The state entry for `id` when it was generated from exactly `hash`.
fn reuse(state: &KeyState, id: &StateId, hash: &str) -> Result<Option<CaMaterial>, PkiError> {
    match state.entries.get(id) {
        Some(e) if e.spec == hash => Ok(Some(CaMaterial::from_pem(e.cert.clone(), e.key.clone())?)),
        _ => Ok(None),
    }
}

/// Builds the materials for `plan`, reusing `state` where the spec is unchanged.
///
/// Every key to be generated is generated first, all at once on every core (slowest
/// algorithms first), then the roots are signed and then the intermediates, in parallel.
/// The result does not depend on thread timing: ids, state entries and `generated` follow
/// plan order. `progress` is called on the calling thread once per generated key.
pub fn materialize(
    plan: &Plan,
    state: &KeyState,
    now: OffsetDateTime,
    progress: Progress<'_>,
) -> Result<Materials, MaterialsError> {
    let ns = plan.mesh.istio_namespace.as_str();
    let (slots, mut roots) = plan_slots(plan, state, ns)?;
    let mut new_keys = generate_keys(&slots, progress)?;
    let made = sign(&slots, &mut new_keys, &mut roots, ns, now)?;
    let (new_state, generated, by_id) = record(&slots, made, state, &roots, ns)?;
    let intermediates = plan.strategy == crate::model::Strategy::Intermediates;
    let [Some(current_root), new_root] = roots else {
        unreachable!("every root is imported, reused from the state or generated above");
    };
    // An intermediate-only rotation has no new root: its new intermediates are signed by
    // the current one (plan_slots), and its "new" bundle is today's.
    let new_root = match new_root {
        Some(r) if !intermediates => r,
        _ => current_root.clone(),
    };
    let (current_bundle, current_roots) = match &plan.current_root {
        RootInput::Generate(_) => (
            current_root.cert_pem.clone().into_bytes(),
            vec![current_root.der.clone()],
        ),
        RootInput::Import(r) => (r.bundle.clone(), r.certs.clone()),
    };
    let new_bundle = match &plan.new_root {
        _ if intermediates => current_bundle.clone(),
        RootInput::Generate(_) => new_root.cert_pem.clone().into_bytes(),
        RootInput::Import(r) => r.bundle.clone(),
    };
    let mut clusters = Vec::with_capacity(plan.clusters.len());
    for c in &plan.clusters {
        let current = signer(
            by_id.get(&StateId::cluster(&c.name, Generation::Current)),
            &c.current,
            &current_root,
            &current_roots,
        );
        let new = signer(
            by_id.get(&StateId::cluster(&c.name, Generation::New)),
            &c.new,
            &new_root,
            if intermediates {
                &current_roots
            } else {
                std::slice::from_ref(&new_root.der)
            },
        );
        clusters.push(ClusterMaterials {
            name: c.name.clone(),
            current,
            new,
        });
    }
    let mut materials = Materials {
        current_bundle,
        current_root,
        current_roots,
        new_bundle,
        new_root,
        clusters,
        state: new_state,
        generated,
    };
    attach_imported_keys(plan, &mut materials, state)?;
    Ok(materials)
}

/// What each slot became: the new key state and the ids generated in this run, both in plan
/// order, and every CA by id.
#[allow(clippy::type_complexity)]
fn record<'s>(
    slots: &'s [Slot<'_>],
    made: Vec<Option<CaMaterial>>,
    state: &KeyState,
    roots: &[Option<CaMaterial>; 2],
    ns: &str,
) -> Result<(KeyState, Vec<StateId>, BTreeMap<&'s StateId, CaMaterial>), MaterialsError> {
    let mut new_state = KeyState::default();
    let mut generated = Vec::new();
    let mut by_id: BTreeMap<&StateId, CaMaterial> = BTreeMap::new();
    for (slot, made) in slots.iter().zip(made) {
        let ca = match (&slot.reused, made) {
            (Some(ca), _) => {
                if let Some(e) = state.entries.get(&slot.id) {
                    new_state.entries.insert(slot.id.clone(), e.clone());
                }
                ca.clone()
            }
            (None, Some(ca)) => {
                let issuer = slot.issuer.and_then(|k| roots[k].as_ref());
                generated.push(slot.id.clone());
                new_state.entries.insert(
                    slot.id.clone(),
                    Entry {
                        spec: spec_hash(slot.spec, issuer, ns),
                        cert: ca.cert_pem.clone(),
                        key: ca.key.clone(),
                    },
                );
                ca
            }
            (None, None) => {
                return Err(MaterialsError::IssuerLocked {
                    id: slot.id.clone(),
                });
            }
        };
        by_id.insert(&slot.id, ca);
    }
    Ok((new_state, generated, by_id))
}

/// Every CA the plan generates, as a slot, reused from the state where its spec is unchanged;
/// and the roots known before generating anything (imported, or reused).
#[allow(clippy::type_complexity)]
fn plan_slots<'p>(
    plan: &'p Plan,
    state: &KeyState,
    ns: &str,
) -> Result<(Vec<Slot<'p>>, [Option<CaMaterial>; 2]), MaterialsError> {
    // Roots known before generating anything: imported, or reused from the state.
    let mut roots: [Option<CaMaterial>; 2] = [None, None];
    let mut slots: Vec<Slot<'_>> = Vec::new();
    // An intermediate-only rotation has no new root: both its intermediates are signed by
    // the current root (slot 0).
    let intermediates = plan.strategy == crate::model::Strategy::Intermediates;
    let root_count = if intermediates { 1 } else { 2 };
    for (k, (input, id)) in [
        (&plan.current_root, StateId::root(Generation::Current)),
        (&plan.new_root, StateId::root(Generation::New)),
    ]
    .into_iter()
    .take(root_count)
    .enumerate()
    {
        match input {
            RootInput::Import(r) => roots[k] = Some(r.signer.clone()),
            RootInput::Generate(spec) => {
                let reused = reuse(state, &id, &spec_hash(spec, None, ns))?;
                roots[k].clone_from(&reused);
                slots.push(Slot {
                    id,
                    spec,
                    root: Some(k),
                    issuer: None,
                    reused,
                });
            }
        }
    }
    for c in &plan.clusters {
        for (k, input, side) in [
            (0, &c.current, Generation::Current),
            (root_count - 1, &c.new, Generation::New),
        ] {
            let IntermediateInput::Generate(spec) = input else {
                continue;
            };
            let id = StateId::cluster(&c.name, side);
            let reused = match &roots[k] {
                // The issuer is generated in this run: so is everything it signs.
                None => None,
                Some(root) => {
                    let reused = reuse(state, &id, &spec_hash(spec, Some(root), ns))?;
                    if reused.is_none() && root.key.is_none() {
                        return Err(MaterialsError::IssuerLocked { id });
                    }
                    reused
                }
            };
            slots.push(Slot {
                id,
                spec,
                root: None,
                issuer: Some(k),
                reused,
            });
        }
    }

    Ok((slots, roots))
}

/// Every new key at once on every core, slowest first; `None` for reused slots.
fn generate_keys(
    slots: &[Slot<'_>],
    progress: Progress<'_>,
) -> Result<Vec<Option<KeyPair>>, MaterialsError> {
    // Every new key at once, slowest first.
    let mut jobs: Vec<usize> = (0..slots.len())
        .filter(|&i| slots[i].reused.is_none())
        .collect();
    jobs.sort_by_key(|&i| std::cmp::Reverse(keygen_cost(slots[i].spec.algorithm)));
    let total = jobs.len();
    let mut done = 0;
    let keys = parallel::map(
        &jobs,
        |&i| pki::generate_key(slots[i].spec.algorithm),
        |j, _| {
            done += 1;
            progress(&slots[jobs[j]].id.to_string(), done, total);
        },
    );
    let mut new_keys: Vec<Option<KeyPair>> =
        std::iter::repeat_with(|| None).take(slots.len()).collect();
    for (&i, key) in jobs.iter().zip(keys) {
        new_keys[i] = Some(key?);
    }

    Ok(new_keys)
}

/// Signs the generated roots, then every generated intermediate in parallel.
fn sign(
    slots: &[Slot<'_>],
    new_keys: &mut [Option<KeyPair>],
    roots: &mut [Option<CaMaterial>; 2],
    ns: &str,
    now: OffsetDateTime,
) -> Result<Vec<Option<CaMaterial>>, MaterialsError> {
    // Roots, then one issuer per root for the intermediates to be signed.
    let mut made: Vec<Option<CaMaterial>> = vec![None; slots.len()];
    let mut issuer_keys: [Option<KeyPair>; 2] = [None, None];
    for (i, slot) in slots.iter().enumerate() {
        if let Some(k) = slot.root
            && let Some(key) = new_keys[i].take()
        {
            let ca = pki::sign_root(slot.spec, &key, now)?;
            roots[k] = Some(ca.clone());
            issuer_keys[k] = Some(key);
            made[i] = Some(ca);
        }
    }
    let mut issuers: [Option<CaIssuer>; 2] = [None, None];
    for k in 0..2 {
        let needed = slots
            .iter()
            .zip(new_keys.iter())
            .any(|(s, key)| s.issuer == Some(k) && key.is_some());
        if let (true, Some(root)) = (needed, &roots[k]) {
            issuers[k] = Some(match issuer_keys[k].take() {
                Some(key) => CaIssuer::with_key(root, key)?,
                None => CaIssuer::new(root)?,
            });
        }
    }
    let pending: Vec<(usize, &KeyPair, &CaIssuer)> = slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let issuer = issuers[s.issuer?].as_ref()?;
            Some((i, new_keys[i].as_ref()?, issuer))
        })
        .collect();
    let signed = parallel::map(
        &pending,
        |(i, key, issuer)| pki::sign_intermediate(slots[*i].spec, key, issuer, ns, now),
        |_, _| {},
    );
    for ((i, _, _), ca) in pending.iter().zip(signed) {
        made[*i] = Some(ca?);
    }

    Ok(made)
}

/// Keys of imported intermediates kept in the key state (`import: {key: state}`, written by
/// `init --from-cluster`): attaches each to its signer and carries the entry into the new
/// state. A locked state leaves the key absent (re-encrypting then needs an identity).
/// Part of [`materialize`].
fn attach_imported_keys(
    plan: &Plan,
    materials: &mut Materials,
    old: &KeyState,
) -> Result<(), StateError> {
    for (c, m) in plan.clusters.iter().zip(materials.clusters.iter_mut()) {
        let IntermediateInput::Import(i) = &c.current else {
            continue;
        };
        if !i.key_from_state {
            continue;
        }
        let id = StateId::cluster(&c.name, Generation::Current);
        let malformed = |reason: String| StateError::Mismatch { reason };
        let entry = old.entries.get(&id).ok_or_else(|| {
            malformed(format!(
                "cluster {}: the plan says the current intermediate's key is in the key state, but there is no `{id}` entry; run `rootroll init --from-cluster` with this output directory",
                c.name
            ))
        })?;
        let same = crate::pki::split_certificates(entry.cert.as_bytes())
            .ok()
            .and_then(|d| d.into_iter().next())
            .is_some_and(|der| der == i.cert.der);
        if !same {
            return Err(malformed(format!(
                "cluster {}: the key state's `{id}` certificate is not the one imported from {}",
                c.name,
                i.dir.display()
            )));
        }
        if let Some(key) = &entry.key
            && !crate::pki::key_matches_cert(key, &i.cert.der).unwrap_or(false)
        {
            return Err(malformed(format!(
                "cluster {}: the key state's `{id}` key does not belong to its certificate",
                c.name
            )));
        }
        m.current.cert.key = entry.key.clone();
        materials.state.entries.insert(id, entry.clone());
    }
    Ok(())
}

/// A cluster's signer: the generated CA `made`, or the imported one with its chain.
fn signer(
    made: Option<&CaMaterial>,
    input: &IntermediateInput,
    root: &CaMaterial,
    roots: &[Vec<u8>],
) -> Signer {
    match (input, made) {
        (IntermediateInput::Import(i), _) => {
            let chain = if i.chain.is_empty() {
                // The Makefile's `cat ca-cert.pem root-cert.pem`, with the root that signed it.
                let issuer = roots
                    .iter()
                    .find(|r| pki::is_signed_by(&i.cert.der, r))
                    .map_or_else(|| root.cert_pem.clone(), |d| pki::der_to_pem(d));
                let mut chain = i.cert.cert_pem.clone();
                if !chain.ends_with('\n') {
                    chain.push('\n');
                }
                chain.push_str(&issuer);
                chain.into_bytes()
            } else {
                i.chain.clone()
            };
            Signer {
                cert: i.cert.clone(),
                chain,
            }
        }
        (IntermediateInput::Generate(_), made) => {
            let cert = made
                .expect("every generated intermediate was reused or made above")
                .clone();
            let chain = format!("{}{}", cert.cert_pem, root.cert_pem).into_bytes();
            Signer { cert, chain }
        }
    }
}

/// How many CAs a render will generate (for progress display).
pub fn count_to_generate(plan: &Plan, state: &KeyState) -> usize {
    // Conservative: entries whose id is absent from the state. Spec changes are found while
    // generating; the progress total is then a lower bound, never shown above 100%.
    let mut ids = Vec::new();
    if matches!(plan.current_root, RootInput::Generate(_)) {
        ids.push(StateId::root(Generation::Current));
    }
    if matches!(plan.new_root, RootInput::Generate(_))
        && plan.strategy != crate::model::Strategy::Intermediates
    {
        ids.push(StateId::root(Generation::New));
    }
    for c in &plan.clusters {
        if matches!(c.current, IntermediateInput::Generate(_)) {
            ids.push(StateId::cluster(&c.name, Generation::Current));
        }
        if matches!(c.new, IntermediateInput::Generate(_)) {
            ids.push(StateId::cluster(&c.name, Generation::New));
        }
    }
    ids.iter()
        .filter(|id| !state.entries.contains_key(*id))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet() -> (Plan, OffsetDateTime) {
        let now = time::macros::datetime!(2027-01-01 00:00 UTC);
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/fleet.yaml");
        (crate::plan::load(&path, now).unwrap(), now)
    }

    #[test]
    fn generated_keys_follow_plan_order_whatever_the_thread_timing() {
        let (plan, now) = fleet();
        let mut seen = Vec::new();
        let m = materialize(&plan, &KeyState::default(), now, &mut |id, done, total| {
            seen.push((id.to_string(), done, total));
        })
        .unwrap();
        let want = [
            "root-current",
            "root-new",
            "us-east-current",
            "us-east-new",
            "us-west-current",
            "us-west-new",
            "eu-central-current",
            "eu-central-new",
        ];
        let generated: Vec<String> = m.generated.iter().map(ToString::to_string).collect();
        assert_eq!(generated, want);
        // One progress call per key, counting up to the exact total.
        assert_eq!(
            seen.iter().map(|(_, d, t)| (*d, *t)).collect::<Vec<_>>(),
            (1..=8).map(|d| (d, 8)).collect::<Vec<_>>()
        );
        let mut ids: Vec<&str> = seen.iter().map(|(id, _, _)| id.as_str()).collect();
        ids.sort_unstable();
        let mut sorted = want.to_vec();
        sorted.sort_unstable();
        assert_eq!(ids, sorted);
        // Every intermediate is signed by its root and holds its own key.
        for c in &m.clusters {
            assert!(pki::is_signed_by(&c.current.cert.der, &m.current_root.der));
            assert!(pki::is_signed_by(&c.new.cert.der, &m.new_root.der));
            let key = c.new.cert.key.as_ref().unwrap();
            assert!(pki::key_matches_cert(key, &c.new.cert.der).unwrap());
        }
    }

    #[test]
    fn a_second_run_reuses_every_key_and_a_spec_change_regenerates_only_what_it_touches() {
        let (plan, now) = fleet();
        let first = materialize(&plan, &KeyState::default(), now, &mut |_, _, _| {}).unwrap();
        let mut calls = 0;
        let again = materialize(&plan, &first.state, now, &mut |_, _, _| calls += 1).unwrap();
        assert!(again.generated.is_empty());
        assert_eq!(calls, 0);
        assert_eq!(again.state.public_sha256(), first.state.public_sha256());

        // A new spec for the new root: the root and everything it signs, nothing else.
        let mut changed = plan.clone();
        if let RootInput::Generate(spec) = &mut changed.new_root {
            spec.subject.common_name = Some("Root CA G3".into());
        }
        let m = materialize(&changed, &first.state, now, &mut |_, _, _| {}).unwrap();
        let generated: Vec<String> = m.generated.iter().map(ToString::to_string).collect();
        assert_eq!(
            generated,
            ["root-new", "us-east-new", "us-west-new", "eu-central-new"]
        );
        assert_eq!(m.current_root.der, first.current_root.der);
        for c in &m.clusters {
            assert!(pki::is_signed_by(&c.new.cert.der, &m.new_root.der));
        }
    }
}
