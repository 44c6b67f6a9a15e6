//! Materializing a plan: imported CAs as read, generated CAs taken from the key state when
//! their spec is unchanged, and generated anew otherwise.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::pki::{self, CaMaterial, CaRole, GenerateSpec, PkiError, generate_ca};
use crate::plan::{IntermediateInput, Plan, RootInput};
use crate::state::{Entry, KeyState};

/// A signing CA as istiod will load it.
#[derive(Clone)]
pub struct Signer {
    pub cert: CaMaterial,
    /// `cert-chain.pem`: the signing cert, then its issuers up to the root.
    pub chain: Vec<u8>,
}

#[derive(Clone)]
pub struct ClusterMaterials {
    pub name: String,
    pub current: Signer,
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
    pub new_root: CaMaterial,
    pub clusters: Vec<ClusterMaterials>,
    /// State after this run (reused and newly generated entries only).
    pub state: KeyState,
    /// Ids generated in this run.
    pub generated: Vec<String>,
}

/// Reports each generated CA as it is made (id, done, total). Used for progress output.
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

struct Gen<'a> {
    old: &'a KeyState,
    new: KeyState,
    generated: Vec<String>,
    now: OffsetDateTime,
    total: usize,
    progress: Progress<'a>,
}

impl Gen<'_> {
    fn get(
        &mut self,
        id: &str,
        spec: &GenerateSpec,
        role: CaRole<'_>,
        namespace: &str,
    ) -> Result<CaMaterial, PkiError> {
        let issuer = match &role {
            CaRole::Root => None,
            CaRole::Intermediate { issuer, .. } => Some(*issuer),
        };
        let hash = spec_hash(spec, issuer, namespace);
        if let Some(e) = self.old.entries.get(id)
            && e.spec == hash
        {
            let ca = CaMaterial::from_pem(e.cert.clone(), e.key.clone())?;
            self.new.entries.insert(id.to_string(), e.clone());
            return Ok(ca);
        }
        if issuer.is_some_and(|i| i.key.is_none()) {
            return Err(PkiError::IssuerLocked { id: id.to_string() });
        }
        let ca = generate_ca(spec, role, self.now)?;
        self.generated.push(id.to_string());
        (self.progress)(id, self.generated.len(), self.total);
        self.new.entries.insert(
            id.to_string(),
            Entry {
                spec: hash,
                cert: ca.cert_pem.clone(),
                key: ca.key.clone(),
            },
        );
        Ok(ca)
    }
}

/// Builds the materials for `plan`, reusing `state` where the spec is unchanged.
pub fn materialize(
    plan: &Plan,
    state: &KeyState,
    now: OffsetDateTime,
    progress: Progress<'_>,
) -> Result<Materials, PkiError> {
    let ns = plan.mesh.istio_namespace.as_str();
    let to_generate = count_to_generate(plan, state);
    let mut g = Gen {
        old: state,
        new: KeyState::default(),
        generated: Vec::new(),
        now,
        total: to_generate,
        progress,
    };
    let (current_bundle, current_root, current_roots) = match &plan.current_root {
        RootInput::Generate(spec) => {
            let ca = g.get("root-current", spec, CaRole::Root, ns)?;
            (
                ca.cert_pem.clone().into_bytes(),
                ca.clone(),
                vec![ca.der.clone()],
            )
        }
        RootInput::Import(r) => (r.bundle.clone(), r.signer.clone(), r.certs.clone()),
    };
    let (new_bundle, new_root) = match &plan.new_root {
        RootInput::Generate(spec) => {
            let ca = g.get("root-new", spec, CaRole::Root, ns)?;
            (ca.cert_pem.clone().into_bytes(), ca)
        }
        RootInput::Import(r) => (r.bundle.clone(), r.signer.clone()),
    };
    let mut clusters = Vec::new();
    for c in &plan.clusters {
        let current = signer(
            &mut g,
            &format!("{}-current", c.name),
            &c.current,
            &current_root,
            &current_roots,
            ns,
        )?;
        let new = signer(
            &mut g,
            &format!("{}-new", c.name),
            &c.new,
            &new_root,
            std::slice::from_ref(&new_root.der),
            ns,
        )?;
        clusters.push(ClusterMaterials {
            name: c.name.clone(),
            current,
            new,
        });
    }
    Ok(Materials {
        current_bundle,
        current_root,
        current_roots,
        new_bundle,
        new_root,
        clusters,
        state: g.new,
        generated: g.generated,
    })
}

fn signer(
    g: &mut Gen<'_>,
    id: &str,
    input: &IntermediateInput,
    root: &CaMaterial,
    roots: &[Vec<u8>],
    ns: &str,
) -> Result<Signer, PkiError> {
    match input {
        IntermediateInput::Generate(spec) => {
            let cert = g.get(
                id,
                spec,
                CaRole::Intermediate {
                    issuer: root,
                    istio_namespace: ns,
                },
                ns,
            )?;
            let chain = format!("{}{}", cert.cert_pem, root.cert_pem).into_bytes();
            Ok(Signer { cert, chain })
        }
        IntermediateInput::Import(i) => {
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
            Ok(Signer {
                cert: i.cert.clone(),
                chain,
            })
        }
    }
}

/// How many CAs a render will generate (for progress display).
pub fn count_to_generate(plan: &Plan, state: &KeyState) -> usize {
    // Conservative: entries whose id is absent from the state. Spec changes are found while
    // generating; the progress total is then a lower bound, never shown above 100%.
    let mut ids = Vec::new();
    if matches!(plan.current_root, RootInput::Generate(_)) {
        ids.push("root-current".to_string());
    }
    if matches!(plan.new_root, RootInput::Generate(_)) {
        ids.push("root-new".to_string());
    }
    for c in &plan.clusters {
        if matches!(c.current, IntermediateInput::Generate(_)) {
            ids.push(format!("{}-current", c.name));
        }
        if matches!(c.new, IntermediateInput::Generate(_)) {
            ids.push(format!("{}-new", c.name));
        }
    }
    ids.iter()
        .filter(|id| !state.entries.contains_key(*id))
        .count()
}
