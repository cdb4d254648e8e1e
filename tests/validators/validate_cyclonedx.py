"""Validate a CycloneDX 1.6 JSON document against the official schema
(as shipped by cyclonedx-python-lib). Exit 0 if valid; print errors and
exit 1 if not; exit 3 if the validator is not installed."""
import sys

try:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
except ImportError as e:  # pragma: no cover
    print(f"validator not installed: {e}", file=sys.stderr)
    sys.exit(3)

with open(sys.argv[1], encoding="utf-8") as f:
    doc = f.read()
err = JsonStrictValidator(SchemaVersion.V1_6).validate_str(doc)
if err is not None:
    print(f"CycloneDX 1.6 schema violation: {err}", file=sys.stderr)
    sys.exit(1)
print("valid CycloneDX 1.6")
