"""WeCom's callback cipher against the test vectors of WeCom's official Python sample (weworkapi_python callback/Sample.py)."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bot.wecom.crypto import BadCiphertext, BadSignature, WeComCipher, aes_key
from tests.fake_wecom import AES_KEY, OTHER_AES_KEY, TOKEN

CORP_ID = "ww1436e0e65a779aee"  # the sample is an app's: its receive id is the corp id
ECHOSTR = "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA=="
MESSAGE = "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+"


def test_the_samples_url_verification() -> None:
    cipher = WeComCipher.of(TOKEN, AES_KEY, CORP_ID)
    cipher.verify("012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb", "1476416373", "47744683", ECHOSTR)
    assert cipher.decrypt(ECHOSTR) == b"1288432023552776189"


def test_the_samples_message() -> None:
    cipher = WeComCipher.of(TOKEN, AES_KEY, CORP_ID)
    cipher.verify("0c3914025cb4b4d68103f6bfc8db550f79dcf48e", "1476422779", "1597212914", MESSAGE)
    assert "<Content>你好</Content>" in cipher.decrypt(MESSAGE).decode()


def test_a_changed_signature_timestamp_or_token_fails() -> None:
    cipher = WeComCipher.of(TOKEN, AES_KEY, CORP_ID)
    with pytest.raises(BadSignature):
        cipher.verify("012bc692d0a58dd4b10f8dfe5c4ac00ae211ebec", "1476416373", "47744683", ECHOSTR)
    with pytest.raises(BadSignature):
        cipher.verify("012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb", "1476416374", "47744683", ECHOSTR)
    with pytest.raises(BadSignature):
        WeComCipher.of("another", AES_KEY).verify(
            "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb", "1476416373", "47744683", ECHOSTR
        )


def test_an_intelligent_robots_receive_id_is_empty() -> None:
    robot = WeComCipher.of(TOKEN, AES_KEY)  # receive id ""
    with pytest.raises(BadCiphertext, match="receive id"):
        robot.decrypt(ECHOSTR)  # the sample's text ends in the corp id
    text = '{"msgid": "1", "text": {"content": "路灯坏了"}}'.encode()
    assert robot.decrypt(robot.encrypt(text)) == text


def test_a_wrong_key_bad_padding_and_junk_are_refused() -> None:
    robot = WeComCipher.of(TOKEN, AES_KEY)
    encrypted = robot.encrypt(b'{"msgid": "1"}')
    with pytest.raises(BadCiphertext):
        WeComCipher.of(TOKEN, OTHER_AES_KEY).decrypt(encrypted)
    # Well-formed AES with a last byte that is no PKCS#7 padding to 32.
    key = aes_key(AES_KEY)
    plain = b"\x00" * 16 + b"\x00\x00\x00\x02{}" + b"\x21" * 10  # 0x21 = 33 > 32
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    bad = base64.b64encode(enc.update(plain) + enc.finalize()).decode()
    with pytest.raises(BadCiphertext, match="padding"):
        robot.decrypt(bad)
    for junk in ("not base64!", "", base64.b64encode(b"short").decode()):
        with pytest.raises(BadCiphertext):
            robot.decrypt(junk)


def test_an_encoding_aes_key_has_43_characters() -> None:
    with pytest.raises(ValueError):
        aes_key(AES_KEY[:42])
    assert len(aes_key(AES_KEY)) == 32
