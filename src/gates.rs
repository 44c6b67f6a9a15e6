//! The gate catalogue: the one list of every gate rootroll advertises or checks.
//!
//! A gate is a stable kebab-case [`Code`] with its [`Gate`] entry: title, where it runs
//! (offline over the rendered repository, or live against a cluster), the phases and data
//! planes it applies to, its severity, what it proves, the hint shown when it fails and a
//! documentation paragraph (`rootroll explain CODE`). `plan`, `status`, ROLLOUT.md and both
//! verify paths read this list, so what is promised is what is checked: a finding can only
//! carry a [`Code`], and a test fails when an entry is advertised that no verify path emits.

use serde::{Deserialize, Serialize};

/// How much a failed gate matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A failure blocks promotion (exit 1).
    Error,
    /// A failure is reported; it blocks only with `--strict`.
    Warning,
}

/// Where a gate runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// `verify offline`: over the rendered repository.
    Offline,
    /// `verify live`: against a running cluster (or a dump of one).
    Live,
}

/// Which data planes a gate applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Planes {
    /// Sidecar and ambient meshes alike.
    All,
    /// Only meshes with `dataPlane: ambient` (ztunnel).
    Ambient,
}

/// One catalogue entry.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Gate {
    /// The stable code.
    pub code: Code,
    /// A few words.
    pub title: &'static str,
    /// Offline or live.
    pub scope: Scope,
    /// The phases (0–4) whose checks include this gate; empty means fleet-wide or every phase.
    pub phases: &'static [u8],
    /// The data planes it applies to.
    pub planes: Planes,
    /// The severity of a failure.
    pub severity: Severity,
    /// What a pass proves, in one sentence.
    pub proves: &'static str,
    /// What to do when it fails.
    pub hint: &'static str,
    /// A paragraph for `rootroll explain`.
    pub doc: &'static str,
}

macro_rules! catalogue {
    ($($variant:ident = $code:literal { $($field:ident: $value:expr),* $(,)? })*) => {
        /// A gate's stable kebab-case code. Never renamed once shipped.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum Code {
            $(
                #[doc = $code]
                #[serde(rename = $code)]
                $variant,
            )*
        }

        impl Code {
            /// Every code, in catalogue order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The kebab-case code.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)*
                }
            }

            /// The catalogue entry.
            pub fn gate(self) -> &'static Gate {
                match self {
                    $(Code::$variant => {
                        const G: Gate = Gate { code: Code::$variant, $($field: $value),* };
                        &G
                    })*
                }
            }
        }
    };
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for Code {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a gate code (`rootroll explain` lists them)"))
    }
}

/// Every catalogue entry, in order.
pub fn all() -> impl Iterator<Item = &'static Gate> {
    Code::ALL.iter().map(|c| c.gate())
}

const ALL_PHASES: &[u8] = &[];

catalogue! {
    ClustersPresent = "clusters-present" {
        title: "every planned cluster is in the tree",
        scope: Scope::Offline, phases: ALL_PHASES, planes: Planes::All, severity: Severity::Error,
        proves: "every cluster the rollout was rendered for has its clusters/<name>/istio-ca directory, so none goes unchecked, and no directory is left of a cluster the rollout no longer names",
        hint: "re-render: every cluster of the plan needs clusters/<name>/istio-ca, and a cluster removed from the plan loses its directory",
        doc: "The rollout file lists the clusters the plan was rendered for. A cluster directory that is missing would never be checked by any other gate, so its absence fails here. A cluster removed from the plan (it left the mesh) has its tree removed by the next render; a directory still there would keep a stale phase applied by its Flux Kustomization or Argo CD Application, so it fails too.",
    }
    PointerValid = "pointer-valid" {
        title: "the active-phase pointer names one phase",
        scope: Scope::Offline, phases: ALL_PHASES, planes: Planes::All, severity: Severity::Error,
        proves: "clusters/<name>/istio-ca/kustomization.yaml lists exactly one existing phase directory",
        hint: "the pointer kustomization must list exactly one `phases/<n>-<name>` resource; use rootroll promote",
        doc: "Flux or Argo CD applies what the pointer kustomization lists. It must name exactly one of the four phase directories; a pointer naming none, several, or a directory that does not exist would apply nothing or the wrong Secret.",
    }
    SecretShape = "secret-shape" {
        title: "each phase is a complete cacerts Secret",
        scope: Scope::Offline, phases: &[1, 2, 3, 4], planes: Planes::All, severity: Severity::Error,
        proves: "the phase file is a v1 Secret of the live name, namespace and type, with exactly the keys istiod reads, never immutable",
        hint: "every phase must be a complete cacerts Secret of the live type, updated in place: re-render",
        doc: "istiod 1.27+ refuses an incomplete cacerts (istio-2026 §1). Every phase carries all four files (or tls.crt, tls.key, ca.crt), keeps the Secret's type (a type change needs a delete), is never immutable (the next phase updates it in place) and has no istio-generated key.",
    }
    SopsMac = "sops-mac" {
        title: "the SOPS file decrypts and its MAC verifies",
        scope: Scope::Offline, phases: &[1, 2, 3, 4], planes: Planes::All, severity: Severity::Error,
        proves: "the encrypted phase Secret opens with an identity from the plan and its MAC covers every value",
        hint: "give --identity FILE (or SOPS_AGE_KEY_FILE) with an operator's key (or the cluster's own key, for its Secrets); re-render a file that fails, never edit encrypted files except with `sops edit`",
        doc: "Flux and KSOPS decrypt each phase Secret with the real sops. A file that does not decrypt, or whose MAC does not match its values, would fail at apply time or carry tampered values. The MAC covers every value, the readable certificates too, and needs the data key: without an identity the gate is not checked (never counted as passed), and with --require-keys it fails.",
    }
    KeyMatchesCert = "key-matches-cert" {
        title: "the private key belongs to the signing certificate",
        scope: Scope::Offline, phases: &[1, 2, 3, 4], planes: Planes::All, severity: Severity::Error,
        proves: "ca-key.pem (tls.key) is the private key of ca-cert.pem (tls.crt)",
        hint: "istiod refuses a key that does not match its certificate and keeps the old CA: re-render",
        doc: "istiod loads the signing key pair at start and on reload; a key that does not belong to the certificate is refused and istiod keeps serving the previous CA, silently. The key is the one ciphertext value of a phase Secret: without an identity the gate is not checked, and with --require-keys it fails.",
    }
    SignerIsCa = "signer-is-ca" {
        title: "the signing certificate is a CA",
        scope: Scope::Offline, phases: &[1, 2, 3, 4], planes: Planes::All, severity: Severity::Error,
        proves: "the signing certificate parses and has CA:TRUE, keyCertSign and no restrictive extended key usage",
        hint: "the signing certificate needs basicConstraints CA:TRUE, keyCertSign and no EKU (or one with serverAuth)",
        doc: "Workload leaves are signed by the first certificate of ca-cert.pem. Peers reject leaves whose issuer is not a CA or whose EKU forbids the usage (facts §9).",
    }
    ChainToBundle = "chain-to-bundle" {
        title: "the signer chains to a root of the phase bundle",
        scope: Scope::Offline, phases: &[1, 2, 3, 4], planes: Planes::All, severity: Severity::Error,
        proves: "the signing certificate verifies, through the served chain, to a root in root-cert.pem",
        hint: "istiod verifies the signing certificate against root-cert.pem at load and keeps the old CA on failure",
        doc: "istiod checks that its signing certificate chains to root-cert.pem when it loads cacerts. A phase whose signer does not chain to its own bundle is refused by istiod.",
    }
    ChainOrder = "chain-order" {
        title: "cert-chain.pem is the signer then its issuers",
        scope: Scope::Offline, phases: &[1, 2, 3, 4], planes: Planes::All, severity: Severity::Error,
        proves: "cert-chain.pem starts with ca-cert.pem and each certificate is signed by the next, ending at a bundle root",
        hint: "istiod serves cert-chain.pem verbatim after each leaf: signing cert first, then each issuer",
        doc: "istiod appends cert-chain.pem to every workload leaf. A chain out of order makes peers build paths that fail.",
    }
    ValidityWindow = "validity-window" {
        title: "the CAs are valid through the rollout",
        scope: Scope::Offline, phases: &[1, 2, 3, 4], planes: Planes::All, severity: Severity::Error,
        proves: "the signer and every bundle root are valid from now until the earliest end of the rollout plus the workload TTL and margin",
        hint: "use CAs valid from the planned apply time until well after the rollout ends",
        doc: "A CA that is not yet valid, or that expires during the rollout, breaks every handshake that depends on it. The window is from the check time to the shortest rotation plus the workload certificate TTL and the safety margin.",
    }
    BundleRoots = "bundle-roots" {
        title: "each bundle holds exactly the planned roots",
        scope: Scope::Offline, phases: &[1, 2, 3, 4], planes: Planes::All, severity: Severity::Error,
        proves: "the phase's root-cert.pem holds exactly the roots the rollout computed for it (A, A+B, A+B+B, B), in that order, each matched by its sha256",
        hint: "a bundle edited by hand trusts other roots than the plan: re-render the phase (never sops edit root-cert.pem)",
        doc: "The rollout file records, for every phase, the roots of its bundle in file order with their fingerprints. Every phase Secret's root-cert.pem (ca.crt) must be exactly that list: a phase 4 that still holds root A keeps trusting it after the rotation, and a reordered or extended bundle changes which issuer BoringSSL picks. Each block must be a clean, parseable CERTIFICATE: istiod 1.28+ silently drops a bad block (istio-2026 §1).",
    }
    BundleBytes = "bundle-bytes" {
        title: "the bundle bytes are the planned bytes",
        scope: Scope::Offline, phases: &[1, 2, 3, 4], planes: Planes::All, severity: Severity::Error,
        proves: "the sha256 of the exact root-cert.pem bytes equals the digest the rollout recorded: in phase 1 always (today's bytes, byte for byte), in every phase under the 1.20–1.29 byte reload rule",
        hint: "phase 1 must carry today's root-cert.pem byte for byte (same whitespace, headers, trailing newline): re-render from the exact live bytes",
        doc: "istiod compares the raw bytes of root-cert.pem with the bundle it runs on (facts §1.5). Phase 1 hands cacerts to GitOps without changing anything, so its bundle must be the imported file byte for byte: equal certificates with other line breaks or a lost trailing newline are a change, and below 1.30 can break the containment rule for every later phase. Under the byte rule every phase's bytes are the ones the rollout proved the rule on.",
    }
    BundleBlocks = "bundle-blocks" {
        title: "every bundle block survives istiod",
        scope: Scope::Offline, phases: &[1, 2, 3, 4], planes: Planes::All, severity: Severity::Error,
        proves: "the phase's bundle and cert-chain.pem are clean CERTIFICATE blocks of CA certificates, with only blank lines between them",
        hint: "rebuild the bundle from the certificates themselves (`rootroll inspect` them, then re-render): no comments, keys or damaged lines between or inside blocks",
        doc: "Since 1.28 istiod drops a certificate it cannot parse from the root bundle instead of rejecting the bundle (istio-2026 §1): a damaged block silently removes a root at runtime, and the workloads that need it fail mTLS with no error anywhere. Every block must be a `CERTIFICATE` that decodes and parses as a CA certificate; text between blocks (a pasted comment or header) is refused too, since it is where such damage hides.",
    }
    AnnotationsMatch = "annotations-match" {
        title: "the fingerprint annotations match the content",
        scope: Scope::Offline, phases: &[1, 2, 3, 4], planes: Planes::All, severity: Severity::Error,
        proves: "rootroll.dev/public-sha256, signer-sha256 and bundle-sha256 on the phase Secret equal the values recomputed from its data",
        hint: "the annotations are stale after a `sops edit`: re-render the phase instead of editing it",
        doc: "verify live --no-secret-read and status tell which phase a cluster runs from these annotations alone. Each is recomputed from the decrypted content (public-sha256 as render::public_fingerprint defines it, signer-sha256 over the signing certificate's DER, bundle-sha256 over the exact bundle bytes); a missing or stale one fails.",
    }
    KustomizeAppliesPhase = "kustomize-applies-phase" {
        title: "the phase directory applies exactly its Secret",
        scope: Scope::Offline, phases: &[1, 2, 3, 4], planes: Planes::All, severity: Severity::Error,
        proves: "building the phase directory as kustomize does (resources, KSOPS generators) yields exactly one document: this phase's Secret file, byte for byte",
        hint: "the phase kustomization must list only its own cacerts Secret (or KSOPS generator): re-render",
        doc: "Flux or Argo CD applies what the phase kustomization builds, not the Secret file the other gates read. A kustomization naming another phase's Secret, several documents, a remote base, a path leaving the repository or a field that rewrites resources (patches, name prefixes, other generators) would apply something no gate checked.",
    }
    ValidityFloor = "validity-floor" {
        title: "the new CAs outlive the rollout by the floor",
        scope: Scope::Offline, phases: &[3, 4], planes: Planes::All, severity: Severity::Error,
        proves: "B's intermediate and root B stay valid at least validityFloor.fail (default 30 days) after the earliest possible end of the rollout",
        hint: "issue the new intermediate (or root) with a longer validity: it must serve long after the rotation ends",
        doc: "A rotation that ends on CA material about to expire has to be repeated at once, and istiod clamps every leaf to its signer's NotAfter (istio-2026 §1). New material expiring within the floor after the earliest end of the rollout (now plus every minimum soak) fails; the threshold is the rollout's validityFloor.fail.",
    }
    ValidityMargin = "validity-margin" {
        title: "the new CAs outlive the rollout by the margin",
        scope: Scope::Offline, phases: &[3, 4], planes: Planes::All, severity: Severity::Warning,
        proves: "B's intermediate and root B stay valid at least validityFloor.warn (default 90 days) after the earliest possible end of the rollout",
        hint: "plan the next rotation now, or issue the new CA material with a longer validity",
        doc: "Between the floor and the margin the rollout is safe but the new material will need rotating soon after; a warning (an error with --strict). The threshold is the rollout's validityFloor.warn.",
    }
    ReloadRule = "reload-rule" {
        title: "istiod accepts the next bundle",
        scope: Scope::Offline, phases: &[1, 2, 3], planes: Planes::All, severity: Severity::Error,
        proves: "each phase's root-cert.pem relates to the previous one as the oldest istiod's reload rule requires",
        hint: "keep the previous bundle's exact bytes as a prefix (or a subset) of the next",
        doc: "istiod 1.20–1.29 hot-reloads a new root-cert.pem only when one bundle's bytes contain the other's; 1.30+ compares the certificate sets (facts §1.5, istio-2026 §1). Otherwise it logs \"Updating new ROOT-CA not supported\" and keeps the old roots.",
    }
    Phase3BytesDiffer = "phase3-bytes-differ" {
        title: "the issuer switch changes the bundle bytes",
        scope: Scope::Offline, phases: &[2], planes: Planes::All, severity: Severity::Error,
        proves: "the root-cert.pem bytes of the phase that switches the issuer (phase 3; phase 2 of an intermediate-only rotation) differ from the previous phase's",
        hint: "phase 3 must be A+B+B (phase 2 of an intermediate-only rotation A+A): identical bytes mean no bundle push and no immediate re-sign",
        doc: "Proxies re-sign their leaves at once only when the bundle bytes change (facts §2). Phase 3 appends B a second time so that switching the issuer is followed by an immediate re-sign everywhere; an intermediate-only rotation (`strategy: intermediates`) appends A a second time in phase 2 for the same reason. The gate is judged at the transition where the rollout switches the issuer.",
    }
    SignerSequence = "signer-sequence" {
        title: "the issuer switches exactly once, where planned",
        scope: Scope::Offline, phases: &[1, 2, 3], planes: Planes::All, severity: Severity::Error,
        proves: "phases 1–2 sign with A's intermediate and 3–4 with B's (an intermediate-only rotation: phase 1 with today's, 2–3 with the new one)",
        hint: "each phase must sign with the intermediate the rollout plans for it: re-render",
        doc: "The signing intermediate may change only once every workload trusts B (phase 2 done), and must not change again after. In an intermediate-only rotation the root never changes, so the new intermediate signs from phase 2 on and must not change again.",
    }
    BundleShared = "bundle-shared" {
        title: "every cluster carries the same bundle",
        scope: Scope::Offline, phases: &[1, 2, 3, 4], planes: Planes::All, severity: Severity::Error,
        proves: "in each phase, all clusters' root-cert.pem bytes are equal",
        hint: "every cluster must carry the same root bundle in a phase (shared root, lockstep)",
        doc: "Cross-cluster mTLS needs each cluster to trust every root a peer uses. In ambient multicluster ztunnel ignores meshConfig.caCertificates, so every root in use must be in each cluster's cacerts (istio-2026 §2, istio/istio#61719). This gate covers that shared-root requirement: equal bundles in every phase mean each cluster's cacerts carries every root any peer uses.",
    }
    RootSubjectsDistinct = "root-subjects-distinct" {
        title: "root A and root B have different subjects",
        scope: Scope::Offline, phases: &[1, 2, 3, 4], planes: Planes::All, severity: Severity::Error,
        proves: "no two different roots of any phase's bundle share a subject name (the rule `plan` applies as root-subject-reused)",
        hint: "give the new root a distinct subject: Envoy and OpenSSL look issuers up by name",
        doc: "BoringSSL (Envoy) and OpenSSL pick a certificate's issuer by subject name, first match in bundle order. Two roots with one subject make paths through the other root fail when an intermediate carries no authority key identifier: real Envoy rejects half of the cells while rustls, which tries every candidate, accepts them. `plan` refuses such a plan (root-subject-reused); verify applies the same rule to every phase bundle of every cluster, as an error.",
    }
    Lockstep = "lockstep" {
        title: "the clusters' phases may coexist (skew rule)",
        scope: Scope::Offline, phases: ALL_PHASES, planes: Planes::All, severity: Severity::Error,
        proves: "the clusters' active phases are at most one apart: no cluster is at phase 3 while another is below 2, nor at 4 while another is below 3",
        hint: "move the clusters behind first: phase 3 anywhere only once every cluster is at 2, phase 4 only once every cluster is at 3",
        doc: "Clusters may differ by one phase, because then every cross-cluster handshake still succeeds: phase 3 anywhere needs every cluster at ≥ 2 (all trust B), phase 4 anywhere needs every cluster at ≥ 3 (no leaf from A remains). A canary cluster may therefore switch its issuer alone. The handshake matrix checks every pair of adjacent phases across clusters, which covers every mixed state this allows.",
    }
    NoPlaintextPrivateKey = "no-plaintext-private-key" {
        title: "no private key in plaintext",
        scope: Scope::Offline, phases: ALL_PHASES, planes: Planes::All, severity: Severity::Error,
        proves: "no file of the tree holds a PEM private key or its base64 outside SOPS ciphertext, and every encrypted phase Secret's private-key entry is ciphertext",
        hint: "render without --insecure-plaintext so every private key is SOPS-encrypted",
        doc: "A CA key in Git is a mesh-wide compromise. Every file of the tree is read (links too); one that cannot be read fails the gate.",
    }
    HandshakeMatrix = "handshake-matrix" {
        title: "every coexisting pair of phases completes mutual TLS",
        scope: Scope::Offline, phases: &[1, 2, 3], planes: Planes::All, severity: Severity::Error,
        proves: "for each transition N→N+1, a leaf from either phase's signer completes mutual TLS with a peer trusting either phase's bundle",
        hint: "a transition whose leaves and bundles do not meet breaks traffic mid-rollout: fix the phases before promoting",
        doc: "During a transition some workloads hold leaves and bundles of phase N and others of N+1. The matrix issues SPIFFE leaves from each phase's signing intermediate and runs real TLS 1.3 mutual handshakes (rustls) between every combination, within each cluster and against the next cluster. The fleet finding covers all N×(N−1) ordered pairs of clusters: when bundle-shared passes, a cross-cluster cell runs exactly the two chain checks of two same-cluster cells, so every cluster's own cells passing decides every pair (src/verify/pairs.rs). Without an identity (no CA key), every cell is decided from the phases' probe leaves by the same rustls verifiers: the handshake's trust decisions, without proof of possession; the report says which mode ran.",
    }
    PrereqMultiroot = "prereq-multiroot" {
        title: "ISTIO_MULTIROOT_MESH on every istiod",
        scope: Scope::Live, phases: &[0], planes: Planes::All, severity: Severity::Error,
        proves: "every istiod Deployment in the Istio namespace runs with ISTIO_MULTIROOT_MESH=true",
        hint: "set pilot.env.ISTIO_MULTIROOT_MESH=\"true\" (prerequisites/istiod-helm-values.yaml) and roll istiod",
        doc: "Without ISTIO_MULTIROOT_MESH istiod does not hot-reload a root bundle with several roots; it still defaults to false (istio-2026 §1).",
    }
    PrereqXdsAgent = "prereq-xds-agent" {
        title: "PROXY_CONFIG_XDS_AGENT in the mesh config",
        scope: Scope::Live, phases: &[0], planes: Planes::All, severity: Severity::Error,
        proves: "meshConfig.defaultConfig.proxyMetadata sets PROXY_CONFIG_XDS_AGENT=true",
        hint: "set meshConfig.defaultConfig.proxyMetadata.PROXY_CONFIG_XDS_AGENT=\"true\", then restart every proxy once",
        doc: "Proxies learn a new root bundle without a restart only through PCDS, which needs PROXY_CONFIG_XDS_AGENT (istio-2026 §1).",
    }
    PrereqXdsAgentPods = "prereq-xds-agent-pods" {
        title: "every running proxy has PROXY_CONFIG_XDS_AGENT",
        scope: Scope::Live, phases: &[0], planes: Planes::All, severity: Severity::Error,
        proves: "every istio-proxy container runs with PROXY_CONFIG_XDS_AGENT=true",
        hint: "restart those workloads once so the injector adds the env (kubectl rollout restart)",
        doc: "The mesh-config setting reaches a proxy only when it is injected; pods started before it was set keep running without PCDS.",
    }
    PrereqVersions = "prereq-versions" {
        title: "Istio, proxy and ztunnel versions can rotate",
        scope: Scope::Live, phases: &[0], planes: Planes::All, severity: Severity::Error,
        proves: "no istiod, proxy or ztunnel runs a version known to break multi-root rotation",
        hint: "upgrade istiod and proxies to 1.21+ (not 1.24.4 or 1.25.1) and ztunnel to 1.24.6 / 1.25.3 / 1.26.0 or later",
        doc: "istiod 1.24.4 and 1.25.1 hold one root (#55793); proxies below 1.21 do not re-sign on a bundle change; ztunnel below 1.24.6 / 1.25.3 / 1.26.0 trusts a single root (ztunnel #1510), so an ambient rotation cannot work on it (istio-2026 §2–3). ztunnel below 1.28.6 / 1.29.2 / 1.30.0 also needs a restart after phase 3 (ztunnel-restarted).",
    }
    NoRestart = "no-restart" {
        title: "no proxy restarted since the phase was applied",
        scope: Scope::Live, phases: &[1, 2, 3, 4], planes: Planes::All, severity: Severity::Warning,
        proves: "no proxy container restarted after the phase was applied",
        hint: "a restart during a rotation hides whether hot reload worked: look at the pod's previous logs",
        doc: "The rotation is designed to need no restart. A proxy that restarted after the phase was applied is worth a look: it may have crashed on the new material.",
    }
    LiveSecretPhase = "live-secret-phase" {
        title: "the live cacerts Secret is this phase",
        scope: Scope::Live, phases: &[1, 2, 3, 4], planes: Planes::All, severity: Severity::Error,
        proves: "the cluster's cacerts Secret carries this phase's public fingerprint (and its content matches it when read)",
        hint: "wait for Flux or Argo CD to apply the phase (flux reconcile / argocd app sync), then check again",
        doc: "The GitOps engine applies the phase asynchronously. Until the live Secret is the phase's Secret, nothing else about the phase can be judged: when it was read and is another phase (or missing), the gates that judge what istiod and the proxies made of the phase are shown as not checked, and the soak has not started. The Secret's public entries are fingerprinted and compared with the rendered phase; keys outside its format (istio-generated, a stale tls.crt, which istiod prefers) fail too.",
    }
    RootConfigmap = "root-configmap" {
        title: "istiod publishes the phase's roots (root publication)",
        scope: Scope::Live, phases: &[1, 2, 3, 4], planes: Planes::All, severity: Severity::Error,
        proves: "where istiod publishes its roots, they are this phase's: the root ConfigMap (PILOT_CA_CERT_CONFIGMAP, default istio-ca-root-cert) in every namespace holds exactly this phase's root-cert.pem bytes, or, with ENABLE_CLUSTER_TRUST_BUNDLE_API=true, the ClusterTrustBundle istio.io:istiod-ca:root-cert holds exactly this phase's roots",
        hint: "istiod publishes root-cert.pem (to the root ConfigMap of every namespace, or to the ClusterTrustBundle) once it reloaded cacerts: check istiod's logs for the reload",
        doc: "istiod publishes its root bundle once it reloaded cacerts: into the root ConfigMap of every namespace, named by its PILOT_CA_CERT_CONFIGMAP env (values.global.trustBundleName, default istio-ca-root-cert), byte for byte; or, when it runs with ENABLE_CLUSTER_TRUST_BUNDLE_API=true, into the cluster-scoped ClusterTrustBundle istio.io:istiod-ca:root-cert instead (certificates.k8s.io/v1beta1, or v1alpha1 where only that is served), which is compared as a set of certificates parsed the way istiod parses them, so a block that does not parse shows as a missing root (istio-2026 §1). Both settings are read from every istiod Deployment's env; revisions that disagree get every target checked, and a setting from a source rootroll cannot read fails the gate rather than being assumed. Other roots mean istiod did not reload, or fell back to a self-signed CA after a restart: in phase 1 this gate is the proof that taking ownership of cacerts changed nothing (the bytes are today's root-cert.pem, byte for byte).",
    }
    WebhookCaBundle = "webhook-ca-bundle" {
        title: "istiod's webhooks trust its roots",
        scope: Scope::Live, phases: &[1, 2, 3, 4], planes: Planes::All, severity: Severity::Error,
        proves: "every mutating and validating webhook that calls istiod's Service has a caBundle containing the phase's roots",
        hint: "istiod patches its webhooks' caBundle; check istiod's webhook controller logs",
        doc: "The API server calls istiod's injection and validation webhooks over TLS with the caBundle. Once istiod serves a certificate from B, a caBundle without B breaks injection and validation. A webhook is istiod's by its clientConfig.service (istiod or istiod-<rev> in the Istio namespace), not by its name (istio-2026 §1, #60774); a remote cluster's URL webhook counts when its configuration is named istio….",
    }
    ProxyReadable = "proxy-readable" {
        title: "every Envoy's admin dump was read",
        scope: Scope::Live, phases: &[1, 2, 3, 4], planes: Planes::All, severity: Severity::Error,
        proves: "every sidecar, gateway and waypoint answered its admin config_dump through a port-forward",
        hint: "grant create on pods/portforward to the verify ServiceAccount and check that the listed pods run (admin port 15000), or collect the dumps with --from-dump",
        doc: "A proxy whose certificates cannot be read cannot be judged; it is never counted as passing. When pods cannot be listed at all, this gate and the proxy gates after it are not checked (prereq-xds-agent-pods carries the failure).",
    }
    ProxyTrustsRoots = "proxy-trusts-roots" {
        title: "every Envoy trusts exactly the phase's roots",
        scope: Scope::Live, phases: &[1, 2, 3, 4], planes: Planes::All, severity: Severity::Error,
        proves: "every Envoy's ROOTCA holds exactly the roots of this phase's bundle",
        hint: "proxies learn a new bundle through PCDS within seconds: check PROXY_CONFIG_XDS_AGENT on the listed pods, or restart them",
        doc: "Read from each Envoy's admin config_dump (the ROOTCA SDS secret) and compared as a set of DER roots: in phases 1–3 a ROOTCA without B cannot accept leaves issued from B, and in phase 4 a ROOTCA still holding A means the proxy never received the B-only bundle.",
    }
    ProxyLeafNewIssuer = "proxy-leaf-new-issuer" {
        title: "every Envoy presents a leaf from B's intermediate",
        scope: Scope::Live, phases: &[3, 4], planes: Planes::All, severity: Severity::Error,
        proves: "every Envoy's default certificate is issued by the cluster's new intermediate",
        hint: "leaves re-sign when the bundle bytes change (phase 3) or at half their TTL: wait, or restart the listed pods",
        doc: "Root A may be removed (phase 4) only when no live leaf chains to it. The leaf's authority key identifier must equal the new intermediate's subject key identifier.",
    }
    ZtunnelReadable = "ztunnel-readable" {
        title: "every ztunnel's certificates were read",
        scope: Scope::Live, phases: &[1, 2, 3, 4], planes: Planes::Ambient, severity: Severity::Error,
        proves: "every ztunnel answered its admin config_dump",
        hint: "grant create on pods/portforward for the ztunnel pods, or collect the dumps with --from-dump",
        doc: "A ztunnel whose certificates cannot be read cannot be judged; it is never counted as passing. An ambient mesh without a ztunnel pod fails here.",
    }
    ZtunnelTrustsNewRoot = "ztunnel-trusts-new-root" {
        title: "every ztunnel identity trusts the phase's roots",
        scope: Scope::Live, phases: &[1, 2, 3, 4], planes: Planes::Ambient, severity: Severity::Error,
        proves: "every ztunnel identity's rootCerts contains the phase's roots (from phase 2 root B), and in phase 4 only B",
        hint: "ztunnel learns roots only when a certificate renews: restart the ztunnel DaemonSet or wait the soak",
        doc: "ztunnel has no PCDS: it learns roots only from each CA response and renews at half its TTL (istio-2026 §2).",
    }
    ZtunnelLeafNewIssuer = "ztunnel-leaf-new-issuer" {
        title: "every ztunnel identity is issued by the new intermediate",
        scope: Scope::Live, phases: &[3, 4], planes: Planes::Ambient, severity: Severity::Error,
        proves: "every ztunnel identity's certChain[0] is issued by the new intermediate",
        hint: "ztunnel ignores the A+B+B (or A+A) byte change: restart the ztunnel DaemonSet, or wait the workload TTL",
        doc: "Before phase 4 removes A, no ztunnel identity may still chain to it (istio-2026 §2). In an intermediate-only rotation it runs from phase 2 on, where the new intermediate starts signing. Passing it (with ztunnel-readable) is also the proof that lets soak-time accept the short soak in ambient.",
    }
    SoakTime = "soak-time" {
        title: "the minimum soak time has passed",
        scope: Scope::Live, phases: &[1, 2, 3, 4], planes: Planes::All, severity: Severity::Error,
        proves: "at least the phase's minimum soak has passed since it was applied",
        hint: "wait: the soak covers propagation, re-signing and the safety margin",
        doc: "The minimum soak is computed by `plan` from the workload TTL, propagation delay and margin. Its clock starts when the live Secret changed, or, when the Secret is not read, when istiod last wrote its root ConfigMaps or its ClusterTrustBundle. In ambient, the phase where the issuer switches soaks a whole workload TTL plus the margin, since ztunnel has no PCDS and re-signs only at half-life; the short soak is accepted only when ztunnel-readable and ztunnel-leaf-new-issuer prove every ztunnel identity issued by the new intermediate (istio-2026 §2). `promote` counts the whole soak from Git.",
    }
    RotationStartBy = "rotation-start-by" {
        title: "the next rotation can still start in time",
        scope: Scope::Offline, phases: ALL_PHASES, planes: Planes::All, severity: Severity::Error,
        proves: "the latest date the next rotation must start (the earliest NotAfter of the active phase's roots and signing intermediate, minus the shortest rotation, a workload TTL and the safety margin) is more than expiry.fail (default 30 days) away",
        hint: "start the next rotation now (`rootroll init --from-render DIR` once this one is finished), or renew the CA that expires first",
        doc: "A rotation takes at least the sum of its phase soaks, and the last leaves its old CA signed live one workload TTL more: started later than that before a CA's NotAfter, it cannot finish before the mesh loses trust. The date is computed per cluster from the active phase Secret's fingerprint annotations and the certificates in .rootroll/rollout.json, so no key is needed (a scheduled CI job can run it). The threshold is the rollout's expiry.fail (spec.rollout.expiry in the plan, or --expiry-fail). A tree whose annotations the rollout file does not know fails: the date cannot be known.",
    }
    RotationStartSoon = "rotation-start-soon" {
        title: "the next rotation is not due soon",
        scope: Scope::Offline, phases: ALL_PHASES, planes: Planes::All, severity: Severity::Warning,
        proves: "the latest date the next rotation must start is more than expiry.warn (default 90 days) away",
        hint: "plan the next rotation: it must start before the date shown",
        doc: "Between expiry.warn and expiry.fail before the start-by date (see rotation-start-by) the mesh is safe, but the next rotation is due; a warning (an error with --strict). The threshold is the rollout's expiry.warn (spec.rollout.expiry in the plan, or --expiry-warn).",
    }
    NoPlaceholder = "no-placeholder" {
        title: "no file keeps a placeholder",
        scope: Scope::Offline, phases: ALL_PHASES, planes: Planes::All, severity: Severity::Error,
        proves: "no text file of the tree holds a value left to fill in (REPLACE-WITH-…, CHANGE-ME), so every manifest works as rendered",
        hint: "set the real value in the plan (an Argo CD Application's repoURL comes from spec.gitops.repoURL) and re-render; never fill it in by hand",
        doc: "A rendered manifest that still says REPLACE-WITH-YOUR-REPO-URL is applied by nobody: Argo CD cannot clone it and the phase never reaches the cluster, while every other gate passes. Every text file of the tree is read (links too) and each placeholder is named by file and line; a file that cannot be read fails the gate.",
    }
    SopsRecipients = "sops-recipients" {
        title: "every encrypted file is readable by exactly its planned recipients",
        scope: Scope::Offline, phases: ALL_PHASES, planes: Planes::All, severity: Severity::Error,
        proves: "each SOPS file lists exactly the age recipients rollout.json plans for its path (a cluster's files: the operators and that cluster's keys; the key state: the operators only), no key more and none fewer",
        hint: "re-render (`rootroll render` re-encrypts every file to its planned recipients) or run `sops updatekeys FILE` with the rendered .sops.yaml; never add a key to one file by hand",
        doc: "Reads only the public sops block of every SOPS file (age recipients and any PGP, KMS or Vault key group), so it runs without an identity. A key more than planned can decrypt a CA key it should not: cluster A's Flux key on cluster B's Secret, or any cluster key on the key state, which holds the root keys. A key fewer leaves a controller or operator unable to decrypt. Recipients are named by their plan names.",
    }
    ProbeChain = "probe-chain" {
        title: "the phase's probe leaf stands for its Secret",
        scope: Scope::Offline, phases: &[1, 2, 3, 4], planes: Planes::All, severity: Severity::Error,
        proves: "probe.pem is a SPIFFE leaf signed by the phase's signing certificate, followed by exactly the phase's chain and bundle",
        hint: "re-render with the key state's identity: render issues a probe for every phase whose signer changed",
        doc: "render issues one public probe leaf per phase from its signing intermediate, shaped as istiod issues leaves, and drops its key; probe.pem (listed by no kustomization, so never applied) holds it with the chain istio-agent would present. Without an identity the handshake matrix is decided from these chains, so a probe that is missing, signed by another CA or carrying another chain would judge the wrong phase.",
    }
    ZtunnelRestarted = "ztunnel-restarted" {
        title: "every ztunnel older than 1.28.6 / 1.29.2 / 1.30.0 restarted after phase 3",
        scope: Scope::Live, phases: &[3], planes: Planes::Ambient, severity: Severity::Error,
        proves: "every ztunnel pod below 1.28.6 / 1.29.2 / 1.30.0 (or of unknown version) started after phase 3 was applied",
        hint: "restart the ztunnel DaemonSet after phase 3 is applied (kubectl rollout restart daemonset/ztunnel), or upgrade ztunnel to 1.28.6 / 1.29.2 / 1.30.0+",
        doc: "ztunnel below 1.28.6 / 1.29.2 / 1.30.0 builds its CA client's TLS channel once, with the root read at startup (the reload is ztunnel #1775). From phase 3 istiod serves a certificate issued from root B, so such a ztunnel cannot renew its certificates until it restarts: they go Unavailable (ztunnel #1679), which ztunnel-readable fails. The gate compares each ztunnel's container start time (else the pod's start time) with the time phase 3 was applied, as soak-time reads it (istio-2026 §2).",
    }
    ProxiesVerified = "proxies-verified" {
        title: "every proxy is one rootroll can read",
        scope: Scope::Live, phases: &[1, 2, 3, 4], planes: Planes::All, severity: Severity::Warning,
        proves: "no pod of an agentgateway GatewayClass runs, and every proxy's admin dump is an Envoy dump",
        hint: "check the listed proxies by hand (their trust bundle and leaf issuer): rootroll cannot read them; --strict makes this an error",
        doc: "agentgateway proxies (GatewayClasses istio-agentgateway and istio-agentgateway-waypoint, Istio 1.31) are not Envoy and have no Envoy config_dump; a proxy whose admin port answers with something that is not an Envoy dump cannot be read either. They are listed as not verified with the reason, never counted as passing: a warning by default, an error with --strict (istio-2026 §1).",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_kebab_case_unique_and_round_trip() {
        let mut seen = std::collections::BTreeSet::new();
        for g in all() {
            let s = g.code.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{s}"
            );
            assert_eq!(s.parse::<Code>().unwrap(), g.code);
            assert_eq!(serde_json::to_string(&g.code).unwrap(), format!("\"{s}\""));
            assert!(!g.title.is_empty() && !g.proves.is_empty() && !g.hint.is_empty());
            assert!(g.doc.len() > 40, "{s}: write a documentation paragraph");
        }
    }
}
