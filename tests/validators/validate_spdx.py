"""Validate an SPDX 2.3 JSON document with the official spdx-tools.
Exit 0 if valid; print errors and exit 1 if not; exit 3 if the validator
is not installed."""
import sys

try:
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
except ImportError as e:  # pragma: no cover
    print(f"validator not installed: {e}", file=sys.stderr)
    sys.exit(3)

doc = parse_file(sys.argv[1])
errors = validate_full_spdx_document(doc)
if errors:
    for e in errors:
        print(f"SPDX violation: {e.validation_message} ({e.context})", file=sys.stderr)
    sys.exit(1)
print(f"valid SPDX {doc.creation_info.spdx_version}: {len(doc.packages)} packages")
