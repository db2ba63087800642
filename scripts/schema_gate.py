"""The compatibility gate: every schema version must be BACKWARD compatible with the previous version
of its subject (a reader on the new version reads data written with the old one), checked with Apache
Avro's own resolution rules (avro.compatibility). Also checks the registry file: every schema parses,
ids are unique, versions count up from 1.

    python scripts/schema_gate.py [schemas/registry.json]

Exit 0 when all pass; 1 with one line per problem, naming the subject, versions and field.
Needs the `avro` package (scripts/local-broker.sh install puts it into .venv-kafka).
"""
import json
import os
import sys

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType


def load(path):
    with open(path) as f:
        return avro.schema.parse(f.read())


def field_path(schema, location):
    """'/fields/9/type/fields/1' → 'geo.lon' (names instead of positions)."""
    parts = [p for p in location.split("/") if p]
    names, node, i = [], schema.to_json(), 0
    while i < len(parts):
        if parts[i] == "fields" and i + 1 < len(parts) and isinstance(node, dict):
            f = node["fields"][int(parts[i + 1])]
            names.append(f["name"])
            node = f["type"]
            i += 2
        elif parts[i] == "type":
            i += 1
        else:
            i += 1
    return ".".join(names) or "(the schema itself)"


def check_pair(subject, old_version, old, new_version, new):
    result = ReaderWriterCompatibilityChecker().get_compatibility(reader=new, writer=old)
    if result.compatibility == SchemaCompatibilityType.compatible:
        return []
    # The checker reports its findings as sets (messages, locations) plus the root "/": name the
    # deepest location, which is the field that breaks.
    locations = sorted((l for l in result.locations if l != "/"), key=len, reverse=True) or ["/"]
    kinds = ", ".join(sorted(k.value for k in result.incompatibilities))
    messages = "; ".join(sorted(result.messages or []))
    problems = [f"{subject}: version {new_version} is not BACKWARD compatible with version {old_version}: "
                f"field '{field_path(new, locations[0])}': {kinds} ({messages})"]
    return problems or [f"{subject}: version {new_version} is not BACKWARD compatible with version {old_version}"]


def gate(registry_path):
    base = os.path.dirname(os.path.abspath(registry_path))
    with open(registry_path) as f:
        registry = json.load(f)
    problems, ids = [], {}
    for subject, versions in sorted(registry["subjects"].items()):
        previous = None
        for n, entry in enumerate(versions, start=1):
            if entry["version"] != n:
                problems.append(f"{subject}: versions must count up from 1; found {entry['version']} at position {n}")
            if entry["id"] in ids:
                problems.append(f"{subject}: schema id {entry['id']} is already used by {ids[entry['id']]}")
            ids[entry["id"]] = f"{subject} v{entry['version']}"
            try:
                schema = load(os.path.join(base, entry["schema"]))
            except Exception as e:  # noqa: BLE001 - any parse failure is a gate failure
                problems.append(f"{subject}: {entry['schema']} does not parse: {e}")
                previous = None
                continue
            if previous is not None:
                problems += check_pair(subject, previous[0], previous[1], entry["version"], schema)
            previous = (entry["version"], schema)
    return problems


def main():
    registry = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "schemas", "registry.json")
    problems = gate(registry)
    for p in problems:
        print("schema-gate: " + p, file=sys.stderr)
    if not problems:
        with open(registry) as f:
            subjects = json.load(f)["subjects"]
        print(f"schema-gate: {sum(len(v) for v in subjects.values())} schema versions in {len(subjects)} subjects, all BACKWARD compatible")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
