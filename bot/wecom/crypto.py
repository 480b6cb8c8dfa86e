"""WeCom's callback cipher: the SHA1 signature and AES-256-CBC of WXBizMsgCrypt / WXBizJsonMsgCrypt.

- ``msg_signature`` is the SHA1 hex digest of token, timestamp, nonce and the
  encrypted text, sorted and joined; compared in constant time.
- The key is ``base64(EncodingAESKey + "=")`` (32 bytes), the IV its first 16
  bytes; the plaintext is 16 random bytes, the message's length as 4 bytes big
  endian, the message and the receive id (the empty string for an intelligent
  robot), PKCS#7-padded to 32-byte blocks (not AES's 16).

The AES itself is ``cryptography``'s; this module only frames and checks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK_BITS = 256  # WeCom pads to 32 bytes, as its samples' PKCS7Encoder does
AES_KEY_LENGTH = 43
_AES_KEY = re.compile(r"^[A-Za-z0-9+/]{43}$")


class BadSignature(Exception):
    """The msg_signature does not match: not from WeCom, or another token."""


class BadCiphertext(Exception):
    """The text does not decrypt to a WeCom message: wrong key, padding, length or receive id."""


def aes_key(encoding_aes_key: str) -> bytes:
    """Return the 32-byte key of a 43-character EncodingAESKey; raise ValueError if malformed."""
    if not _AES_KEY.match(encoding_aes_key):
        raise ValueError("an EncodingAESKey is 43 characters of A-Z, a-z, 0-9, + and /")
    return base64.b64decode(encoding_aes_key + "=")


def signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """Return the msg_signature of an encrypted text."""
    return hashlib.sha1("".join(sorted((token, timestamp, nonce, encrypted))).encode()).hexdigest()


@dataclass(frozen=True)
class WeComCipher:
    """Sign, check, encrypt and decrypt with one robot's token and key."""

    token: str
    key: bytes
    receive_id: str = ""  # the corp id for an app; empty for an intelligent robot

    @classmethod
    def of(cls, token: str, encoding_aes_key: str, receive_id: str = "") -> WeComCipher:
        """Return the cipher of a token and an EncodingAESKey."""
        return cls(token, aes_key(encoding_aes_key), receive_id)

    def verify(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> None:
        """Raise BadSignature unless ``msg_signature`` signs ``encrypted`` (constant time)."""
        expected = signature(self.token, timestamp, nonce, encrypted).encode()
        given = msg_signature.encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(expected, given):
            raise BadSignature("msg_signature does not match")

    def decrypt(self, encrypted: str) -> bytes:
        """Return the message inside ``encrypted``; raise BadCiphertext when it is not one."""
        try:
            raw = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadCiphertext("not base64") from exc
        if not raw or len(raw) % 16:
            raise BadCiphertext("not whole AES blocks")
        decryptor = Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16])).decryptor()
        padded = decryptor.update(raw) + decryptor.finalize()
        unpadder = padding.PKCS7(BLOCK_BITS).unpadder()
        try:
            plain = unpadder.update(padded) + unpadder.finalize()
        except ValueError as exc:
            raise BadCiphertext("bad padding") from exc
        if len(plain) < 20:
            raise BadCiphertext("too short")
        (length,) = struct.unpack(">I", plain[16:20])
        message, receive_id = plain[20 : 20 + length], plain[20 + length :]
        if len(message) != length:
            raise BadCiphertext("length beyond the text")
        if not hmac.compare_digest(receive_id, self.receive_id.encode()):
            raise BadCiphertext("another receive id")
        return message

    def encrypt(self, message: bytes, random16: bytes | None = None) -> str:
        """Return ``message`` encrypted as WeCom does (random prefix unless given)."""
        prefix = random16 if random16 is not None else os.urandom(16)
        plain = prefix + struct.pack(">I", len(message)) + message + self.receive_id.encode()
        padder = padding.PKCS7(BLOCK_BITS).padder()
        padded = padder.update(plain) + padder.finalize()
        encryptor = Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16])).encryptor()
        return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()

    def sign(self, timestamp: str, nonce: str, encrypted: str) -> str:
        """Return the msg_signature of ``encrypted`` with this token."""
        return signature(self.token, timestamp, nonce, encrypted)
