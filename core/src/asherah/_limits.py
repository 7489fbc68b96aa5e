"""Size limits shared with the reference, so a record one side writes the other can read."""

MAX_PAYLOAD_BYTES = 64 * 1024 * 1024
#: The reference's decrypt limit on the record's length. It is too small: base64 makes a
#: record of a 48.7+ MiB plaintext longer than this, so the reference encrypts what it then
#: refuses to decrypt. We apply it to the decoded data instead (see MAX_RECORD_CHARS).
MAX_ENVELOPE_BYTES = MAX_PAYLOAD_BYTES + 1024 * 1024
#: The longest record we accept: the base64 of the largest sealed payload plus 1 MiB for the
#: key envelope and JSON, so every record an encrypt can return also decrypts.
MAX_RECORD_CHARS = 4 * ((MAX_PAYLOAD_BYTES + 28 + 2) // 3) + 1024 * 1024
MAX_DATA_ROW_ENCRYPTED_KEY_BYTES = 16_384
MAX_KEY_ID_BYTES = 4_096
