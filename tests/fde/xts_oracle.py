#!/usr/bin/python3
# Independent AES-XTS-plain64 oracle (python3-cryptography) for the fde tests.
# usage: xts_oracle.py encrypt|decrypt KEYFILE IN OUT SECTOR_SIZE FIRST_IV
# The IV of sector k is FIRST_IV + k * SECTOR_SIZE / 512, little-endian in a
# 16-byte tweak (plain64, 512-byte units as dm-crypt).
import sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

mode, keyfile, infile, outfile, ss, iv0 = sys.argv[1:7]
ss, iv0 = int(ss), int(iv0)
key = open(keyfile, "rb").read()
data = open(infile, "rb").read()
assert len(data) % ss == 0
out = bytearray()
for k in range(len(data) // ss):
    tweak = (iv0 + k * ss // 512).to_bytes(16, "little")
    c = Cipher(algorithms.AES(key), modes.XTS(tweak))
    op = c.encryptor() if mode == "encrypt" else c.decryptor()
    out += op.update(data[k * ss:(k + 1) * ss]) + op.finalize()
open(outfile, "wb").write(out)
