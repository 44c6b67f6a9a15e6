#!/usr/bin/env python3
"""Makes the tampered SOPS files of the hostile-input catalog.

`base.sops.yaml` is a small Secret (no key material: the values are placeholders) encrypted
by the real sops 3.11 to the published demo key plans/demo.agekey; every other file is that
file with one thing changed. `rootroll decrypt FILE --identity plans/demo.agekey` must refuse
each of them (exit 2) with an error naming the file and what was wrong.

Usage: python3 tests/hostile/sops/make.py [--fresh]   (needs sops and age-keygen on PATH)

The existing base.sops.yaml and encrypted-to-another-key.sops.yaml are reused, so adding a case
changes no other file; --fresh encrypts both anew (every case then changes).
"""

import os
import pathlib
import re
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
DEMO_KEY = HERE.parent.parent.parent / "plans" / "demo.agekey"

PLAIN = """apiVersion: v1
kind: Secret
metadata:
    name: cacerts
    namespace: istio-system
type: Opaque
data:
    ca-cert.pem: cGxhY2Vob2xkZXIgY2VydGlmaWNhdGU=
    ca-key.pem: cGxhY2Vob2xkZXIga2V5
    root-cert.pem: cGxhY2Vob2xkZXIgcm9vdA==
"""


def encrypt(plain, recipient):
    with tempfile.TemporaryDirectory() as d:
        src = pathlib.Path(d) / "secret.yaml"
        src.write_text(plain)
        out = subprocess.run(
            ["sops", "--disable-version-check", "encrypt", "--age", recipient,
             "--encrypted-regex", "^(data|stringData)$", str(src)],
            check=True, capture_output=True, text=True,
        )
        return out.stdout


def line_of(text, prefix):
    return next(l for l in text.splitlines() if l.strip().startswith(prefix))


def flip(s, at):
    return s[:at] + ("B" if s[at] == "A" else "A") + s[at + 1:]


def main():
    recipient = subprocess.run(["age-keygen", "-y", str(DEMO_KEY)], check=True,
                               capture_output=True, text=True).stdout.strip()
    fresh = "--fresh" in sys.argv[1:]
    if fresh or not (HERE / "base.sops.yaml").exists():
        (HERE / "base.sops.yaml").write_text(encrypt(PLAIN, recipient))
    base = (HERE / "base.sops.yaml").read_text()

    key_line = line_of(base, "ca-key.pem: ENC[")
    mac_line = line_of(base, "mac: ENC[")
    lm_line = line_of(base, "lastmodified:")
    cases = {}
    at = key_line.index("data:") + 5
    cases["value-ciphertext-flipped"] = base.replace(key_line, flip(key_line, at))
    at = key_line.index("tag:") + 4
    cases["value-tag-flipped"] = base.replace(key_line, flip(key_line, at))
    cases["value-iv-truncated"] = base.replace(
        key_line, re.sub(r"iv:([^,]{8})[^,]*", r"iv:\1", key_line))
    cases["value-type-changed"] = base.replace(key_line, key_line.replace("type:str", "type:int"))
    cases["value-key-renamed"] = base.replace("ca-key.pem: ENC", "ca-key-2.pem: ENC")
    cases["value-moved-to-stringdata"] = base.replace(key_line + "\n", "").replace(
        "sops:\n", "stringData:\n" + key_line + "\n" + "sops:\n")
    cert_line = line_of(base, "ca-cert.pem: ENC[")
    root_line = line_of(base, "root-cert.pem: ENC[")
    cert_value = cert_line.split(": ", 1)[1]
    root_value = root_line.split(": ", 1)[1]
    cases["values-swapped"] = base.replace(cert_line, cert_line.replace(cert_value, root_value)).replace(
        root_line, root_line.replace(root_value, cert_value))
    lines = base.splitlines(keepends=True)
    i = next(n for n, l in enumerate(lines) if l.strip().startswith("ca-cert.pem:"))
    j = next(n for n, l in enumerate(lines) if l.strip().startswith("root-cert.pem:"))
    lines[i], lines[j] = lines[j], lines[i]
    cases["values-reordered"] = "".join(lines)
    cases["value-removed"] = base.replace(key_line + "\n", "")
    cases["value-added-plaintext"] = base.replace(
        key_line + "\n", key_line + "\n    extra.pem: cGxhaW50ZXh0\n")
    cases["value-replaced-by-plaintext"] = base.replace(
        key_line, "    ca-key.pem: cGxhY2Vob2xkZXIga2V5")
    cases["plaintext-field-changed"] = base.replace("name: cacerts", "name: evil")
    cases["mac-removed"] = base.replace(mac_line + "\n", "")
    cases["mac-flipped"] = base.replace(mac_line, flip(mac_line, mac_line.index("data:") + 5))
    cases["mac-empty"] = base.replace(mac_line, "    mac: \"\"")
    cases["lastmodified-changed"] = base.replace(lm_line, '    lastmodified: "2001-02-03T04:05:06Z"')
    cases["lastmodified-garbage"] = base.replace(lm_line, '    lastmodified: "yesterday"')
    cases["encrypted-regex-changed"] = base.replace(
        "encrypted_regex: ^(data|stringData)$", "encrypted_regex: ^nothing$")
    cases["second-rule-added"] = base.replace(
        "encrypted_regex: ^(data|stringData)$",
        "encrypted_regex: ^(data|stringData)$\n    unencrypted_suffix: _unencrypted")
    enc = line_of(base, "enc: |")
    start = base.index(enc)
    end = base.index("-----END AGE ENCRYPTED FILE-----", start)
    body = base[start:end]
    mid = start + len(enc) + 1 + (len(body) - len(enc)) // 2
    cases["age-stanza-corrupted"] = base[:mid] + ("B" if base[mid] == "A" else "A") + base[mid + 1:]
    cases["age-stanza-truncated"] = base[:mid] + "\n            " + base[end:]
    age_start = base.index("    age:\n")
    age_end = base.index("    lastmodified:")
    cases["age-stanzas-removed"] = base[:age_start] + "    age: []\n" + base[age_end:]
    cases["sops-block-removed"] = base[: base.index("sops:\n")]
    cases["truncated-file"] = base[: len(base) // 2]
    cases["deep-nesting"] = "a: " + "[" * 10000 + "]" * 10000 + "\n" + base
    cases["deep-block-nesting"] = "a:\n" + "".join(
        " " * i + "-\n" for i in range(1, 301)) + base
    cases["anchor-alias"] = base.replace("name: cacerts", "name: &n cacerts").replace(
        "namespace: istio-system", "namespace: *n")
    # Key rules: a pattern that makes a backtracking matcher run for ages on a 42-character key
    # (sops uses Go's linear-time RE2), and patterns Go's regexp cannot compile.
    rule = "encrypted_regex: ^(data|stringData)$"
    cases["regex-pathological"] = base.replace(
        rule, "encrypted_regex: ^(a|a)*(a|a)*(a|a)*(a|a)*c$").replace(
        "    name: cacerts\n", "    name: cacerts\n    " + "a" * 41 + "b: x\n")
    cases["regex-backreference"] = base.replace(rule, "encrypted_regex: ^(data)\\1$")
    cases["regex-lookahead"] = base.replace(rule, "encrypted_regex: ^(?=data)")
    cases["regex-rust-only-syntax"] = base.replace(rule, "encrypted_regex: ^\\<data")
    # Malformed metadata (issue 18): each named for what it is, not as "not a SOPS file".
    version_line = "    version: 3.11.0\n"
    age_block = base[age_start:age_end]
    cases["mac-list"] = base.replace(mac_line, "    mac: [a, list]")
    cases["mac-type-int"] = base.replace(mac_line, mac_line.replace("type:str]", "type:int]"))
    cases["mac-garbage"] = base.replace(mac_line, "    mac: garbage")
    cases["age-string"] = base[:age_start] + '    age: "string"\n' + base[age_end:]
    cases["age-entry-string"] = base[:age_start] + "    age:\n        - age1x\n" + base[age_end:]
    cases["age-enc-empty"] = base.replace(
        age_block, age_block[: age_block.index("          enc: |")] + '          enc: ""\n')
    cases["age-recipient-list"] = base.replace("- recipient: age1", "- recipient: [age1") .replace(
        "\n          enc: |", "]\n          enc: |", 1)
    cases["lastmodified-list"] = base.replace(lm_line, "    lastmodified: [2026]")
    cases["lastmodified-missing"] = base.replace(lm_line + "\n", "")
    cases["version-missing"] = base.replace(version_line, "")
    cases["version-banana"] = base.replace(version_line, "    version: banana\n")
    cases["version-not-semver"] = base.replace(version_line, "    version: 3.11\n")
    cases["version-tagged"] = base.replace(version_line, "    version: !!str 3.11.0\n")
    cases["sops-empty"] = base[: base.index("sops:\n")] + "sops:\n"
    cases["sops-string"] = base[: base.index("sops:\n")] + "sops: encrypted\n"
    cases["sops-list"] = base[: base.index("sops:\n")] + "sops: [a]\n"
    cases["sops-not-yaml"] = base[: base.index("sops:\n")] + "sops: [\n"
    cases["alias-in-sops-block"] = base.replace(version_line, "    version: &v 3.11.0\n    x: *v\n")
    cases["deep-nesting-in-sops-block"] = base.replace(
        version_line, version_line + "    x: " + "[" * 5000 + "]" * 5000 + "\n")
    cases["duplicate-top-level-key"] = base.replace("type: Opaque\n", "type: Opaque\ntype: Opaque\n")
    cases["duplicate-metadata-field"] = base.replace(version_line, version_line * 2)
    cases["encrypted-regex-removed"] = base.replace("    " + rule + "\n", "")
    cases["comment-rule"] = base.replace(rule, "encrypted_comment_regex: ^secret")
    group = "        - age:\n" + "".join(
        "        " + l + "\n" for l in age_block[len("    age:\n"):].splitlines())
    cases["key-groups-shamir"] = base[:age_start] + "    key_groups:\n" + group * 2 + base[age_end:]
    cases["pgp-created-at-garbage"] = base.replace(
        version_line, version_line + "    pgp:\n        - fp: ABC\n          created_at: garbage\n          enc: x\n")
    other_file = HERE / "encrypted-to-another-key.sops.yaml"
    if fresh or not other_file.exists():
        other = subprocess.run(["age-keygen"], check=True, capture_output=True, text=True).stdout
        other_recipient = next(l.split(": ")[1] for l in other.splitlines() if "public key" in l)
        cases["encrypted-to-another-key"] = encrypt(PLAIN, other_recipient)
    for name, text in cases.items():
        assert text != base, name
        (HERE / f"{name}.sops.yaml").write_text(text)
    (HERE / "not-utf8.sops.yaml").write_bytes(base.encode().replace(b"cacerts", b"cac\xffrts"))
    (HERE / "empty.sops.yaml").write_text("")


if __name__ == "__main__":
    os.chdir(HERE)
    main()
