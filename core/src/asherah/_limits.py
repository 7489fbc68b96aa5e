"""Size limits shared with the reference, so a record one side writes the other can read."""

MAX_PAYLOAD_BYTES = 64 * 1024 * 1024
MAX_ENVELOPE_BYTES = MAX_PAYLOAD_BYTES + 1024 * 1024
MAX_DATA_ROW_ENCRYPTED_KEY_BYTES = 16_384
MAX_KEY_ID_BYTES = 4_096
