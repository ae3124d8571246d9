"""ElGamal-2048 (cryptography.rst "ElGamal"): I2P's compatibility vectors, round trips, malformed blocks."""
from __future__ import annotations

import random

import pytest

from core.crypto import elgamal
from core.data.encoding import b64decode
from core.data.errors import CryptoError, ProtocolError

# the compatibility vectors of Java I2P's ElGamalTest (core/java/test/junit/net/i2p/crypto/ElGamalTest.java)
PUBLIC_KEY = (
    "pOvBUMrSUUeN5awynzbPbCAwe3MqWprhSpp3OR7pvdfm9PhWaNbPoKRLeEmDoUwyNDoHE0E6mcZSG8qPQ8XUZFlczpilOl0MJBvs"
    "I9u9SMyi~bEqzSgzh9FNfS-NcGji3q2wI~Ux~q5BKOjGlyMLgd1nxl5R5wIYL4uHKZNaYuArsRYmtV~MgMQPGvDtIbdGTV6aL6Ub"
    "OYryzQSUMYOuO3S~YoBjA6Nmi0SeJM3tyTxlI6U1EYjR6oQcI4SOFUW4L~8pfYWijcncCODAqpXVN6ZIAJ3a6vjxGu56IDp4xCcK"
    "lOEHgdXvqmEC67dR5qf2btH6dtWoB3-Z6QPsS6tPTQ==")
PRIVATE_KEY = (
    "gMlIhURVXU8uPube20Xr8E1K11g-3qZxOj1riThHqt-rBx72MPq5ivT1rr28cE9mzOmsXibbsuBuQKYDvF7hGICRB3ROSPePYhcu"
    "pV3j7XiXUIYjWNw9hvylHXK~nTT7jkpIBazBJZfrLJPcDZTDB0YnCOHOL-KFn4N1R5B22g0iYRABN~O10AUjQmf1epklAXPqYlzm"
    "OYeJSfTPBIE44nEccWJp0M0KynhKVbDI0v9VYm6sPFK7WrzRyWwHL~r735wiRkwywuMmKJtA7-PuJjcWNLkJwx6WScH2msMzhzYP"
    "i8JSZJBl~PosX934l-L0T-KNV4jg1Ih6yoCnm1748A==")
UNENCRYPTED = [b"", b"hello world", b"1234567890" * 21 + b"123456789012", b"\x00x00", b"\x00x00\x00x00\x00x00",
               b"\x00x00\x00x01\x00x02\x00x00"]
ENCRYPTED = [
    (
        "AMfISa8KvTpaC7KXZzSvC2axyiSk0xPexBAf29yU~IKq21DzaU19wQcGJg-ktpG4hjGSg7u-mJ07b61yo-EGmVGZsv3nYuQYW-Gj"
        "vsZQa9nm98VljlMtWrxu7TsRXw~SQlWQxMvthqJB1A7Y7Qa~C7-UlRytkD-cpVdgUfM-esuMWmjGs6Vc33N5U-tce5Fywa-9y7PS"
        "n3ukBO8KGRwm7T12~H2gvhgxrVeK2roOzsV7f5dGkvBQRZJ309Vg3j0kjaxWutgI3vli0pzDbSK9d5NR-GUDtdOb6IIfLiOckBeg"
        "cv6I-wlSXjYJe8mIoaK45Ok3rEpHwWKVKS2MeuI7AmsAWgkQmWf8irmZaKc9X910VWSO5GYu6006hSc~r2TL3O7vwtW-Z9Oq~sAa"
        "m9av1PPVJzAx8A4g~m~1avtNnncwlChsGo6mZHXqz-QMdMJXXP57f4bx36ZomkvpM-ZLlFAn-a~42KQJAApo4LfEyk7DPY2aTXL9"
        "ArOCNQIQB4f8QLyjvAvu6M3jzCoGo0wVX6oePfdiokGflriYOcD8rL4NbnCP~MSnVzC8LKyRzQVN1tDYj8~njuFqekls6En8KFJ-"
        "qgtL4PiYxbnBQDUPoW6y61m-S9r9e9y8qWd6~YtdAHAxVlw287~HEp9r7kqI-cjdo1337b7~5dm83KK45g5Nfw=="),
    (
        "AIrd65mG1FJ~9J-DDSyhryVejJBSIjYOqV3GYmHDWgwLchTwq-bJS7dub3ENk9MZ-C6FINgjUFRaLBtfwJnySmNf8pIf1srmgdfq"
        "GV2h77ufG5Gs0jggKPmPV~7Z1kTcgsqpL8MyrfXrGi86X5ey-T0SZSFc0X1EhaE-47WlyWaGf-~xth6VOR~KG7clOxaOBpks-7WK"
        "ZNQf7mpQRE4IsPJyj5p1Rf-MeDbVKbK~52IfXSuUZQ8uZr34KMoy4chjn6e-jBhM4XuaQWhsM~a3Q-zEpV-ea6t0bQTYfsbG9ch7"
        "pJuDPHM64o5mF9FS5-JGr7MOtfP7KDNHiYM2~-uC6BIAbiqBN8WSLX1mrHVuhiM-hiJ7U4oq~HYB6N~U980sCIW0dgFBbhalzzQh"
        "JQSrC1DFDqGfL5-L25mjArP8dtvN0JY3LSnbcsm-pT9ttFHCPGomLfaAuP7ohknBoXK0j9e6~splg5sUA9TfLeBfqcLr0Sf8b3l~"
        "PvmrVkbVcaE8yUqSS6JFdt3pavjyyAQSmSlb2jVNKGPlrov5QLzlbH7G~AUvIehsbGQX5ptRROtSojN~iYx3WQTOa-JLEC-AL7Rb"
        "Ru6B62p9I0pD0JgbUfCc4C4l9E9W~sMuaJLAXxh0b2miF7C5bzZHxbt~MtZ7Ho5qpZMitXyoE3icb43B6Y1sbA=="),
    (
        "ACjb0FkTIQbnEzCZlYXGxekznfJad5uW~F5Mbu~0wtsI1O2veqdr7Mb0N754xdIz7929Ti1Kz-CxVEAkb3RBbVNcYHLfjy23oQ4B"
        "CioDKQaJcdkJqXa~Orm7Ta2tbkhM1Mx05MDrQaVFgCVXtwTsPSLVK8VwScjPIFLXgQqqZ5osq~WhaMcYe2I2RCQLOx2VzaKbT21M"
        "MbtF70a-nKWovkRUNfJEPeJosFwF2duAD0BHHrPiryK9BPDhyOiyN82ahOi2uim1Nt5yhlP3xo7cLV2p6kTlR1BNC5pYjtsvetZf"
        "6wk-solNUrJWIzcuc18uRDNH5K90GTL6FXPMSulM~E4ATRQfhZfkW9xCrBIaIQM49ms2wONsp7fvI07b1r0rt7ZwCFOFit1HSAKl"
        "8UpsAYu-EsIO1qAK7vvOUV~0OuBXkMZEyJT-uIVfbE~xrwPE0zPYE~parSVQgi~yNQBxukUM1smAM5xXVvJu8GjmE-kJZw1cxaYL"
        "GsJjDHDk4HfEsyQVVPZ0V3bQvhB1tg5cCsTH~VNjts4taDTPWfDZmjtVaxxrPRII4NEDKqEzg3JBevM~yft-RDfMc8RVlm-gCGAN"
        "rRQORFii7uD3o9~y~4P2tLnO7Fy3m5rdjRsOsWnCQZzw37mcBoT9rEZPrVpD8pjebJ1~HNc764xIpXDWVt8CbA=="),
    (
        "AHDZBKiWeaIYQS9R1l70IlRnoplwKTkLP2dLlXmVh1gB33kx65uX8OMb3hdZEO0BbzxkkxquqlNn5w166nJO4nPbpEzVfgtY4ClU"
        "uv~W4H4CXBr0FcZM1COAkd6rtp6~lUp7cZ8FAkpHspl95IxlFM-F1HwiPcbmTjRO1AwCal4sH8S5WmJCvBU6jH6pBPo~9B9vAtP7"
        "vX1EwsG2JfCQXkVkfvbWpSicbsWn77aECedS3HkIMrXrxojp7gAiPgQhX4NR387rcUPFsMHGeUraTUPZD7ctk5tpUuYYwRQc5cRK"
        "Ha4zOq~AQyljx5w5~FByLda--6yCe7qDcILyTygudJ4AHRs1pJRU3uuRTHZx0XJQo~cPsoQ2piAOohITX9~yMCimCgv2EIhY3Z-m"
        "Ago8qQ4iMbItoE1cl93Iu2YV2n4wMq9laBx0shuKOJqO3rjRnszzCbqMuFAXfc3KgGDEaCpI7049s3i2yIcv4vT9uUAlrM-dsrdw"
        "0JgJiFYl0JXh~TO0IyrcVcLpgZYgRhEvTAdkDNwTs-2GK4tzdPEd34os4a2cDPL8joh3jhp~eGoRzrpcdRekxENdzheL4w3wD1fJ"
        "9W2-leil1FH6EPc3FSL6e~nqbw69gNbsuXAMQ6CobukJdJEy37uKmEw4v6WPyfYMUUacchv1JoNfkHLpnAWifQ=="),
    (
        "AGwvKAMJcPAliP-n7F0Rrj0JMRaFGjww~zvBjyzc~SPJrBF831cMqZFRmMHotgA7S5BrH26CL8okI2N-7as0F2l7OPx50dFEwSVS"
        "jqBjVV6SGRFC8oS-ii1FURMz2SCHSaj6kazAYq4sDwyqR7vnUrOtPnZujHSU~a02jinyn-QOaHkxRiUp-Oo0jlZiU5xomXgLdkht"
        "uz6725WUDj3uVlMtIYfeKQsTdasujHe1oQhUmp58jfg5vgZ8g87cY8rn4p9DRwDBBuo6vi5on7T13sGxtY9wz6HTpwzDhEqpNrj~"
        "h4JibElfi0Jo8ZllmNTO1ZCNpUQgASoTtyFLD5rk6cIAMK0R7A7hjB0aelKM-V7AHkj-Fhrcm8xIgWhKaLn2wKbVNpAkllkiLALy"
        "fWJ9dhJ804RWQTMPE-GDkBMIFOOJ9MhpEN533OBQDwUKcoxMjl0zOMNCLx8IdCE6cLtUDKJXLB0atnDpLkBer6FwXP81EvKDYhtp"
        "1GsbiKvZDt8LSPJQnm2EdA3Pr9fpAisJ5Ocaxlfa6~uQCuqGA9nJ9n6w03u-ZpSMhSh4zm2s1MqijmaJRc-QNKmN~u1hh3R2hwWN"
        "i7FoStMA87sutEBXMdFI8un7StHNSEiCYwmmW2Nu3djkM-X8gGjSsdrphTU7uOXbwazmguobFGxI0JujYruM5Q=="),
    (
        "ALFYtPSwEEW3eTO4hLw6PZNlBKoSIseQNBi034gq6FwYEZsJOAo-1VXcvMviKw2MCP9ZkHlTNBfzc79ms2TU8kXxc7zwUc-l2HJL"
        "Wh6dj2tIQLR8bbWM7U0iUx4XB1B-FEvdhbjz7dsu6SBXVhxo2ulrk7Q7vX3kPrePhZZldcNZcS0t65DHYYwL~E~ROjQwOO4Cb~8F"
        "giIUjb8CCNw5zxJpBaEt7UvZffkVwj-EWTzFy3DIjWIRizxnsI~mUI-VspPE~xlmFX~TwPS9UbwJDpm8-WzINFcehSzF3y9rzSMX"
        "-KbU8m4YZj07itZOiIbWgLeulTUB-UgwEkfJBG0xiSUAspZf2~t~NthBlpcdrBLADXTJ7Jmkk4MIfysV~JpDB7IVg0v4WcUUwF3s"
        "YMmBCdPCwyYf0hTrl2YbL6kmm4u97WgQqf0TyzXtVZYwjct4LzZlyH591y6O6AQ4Fydqos9ABInzu-SbXq6S1Hi6vraNWU3mcy2m"
        "yie32EEXtkX7P8eXWY35GCv9ThPEYHG5g1qKOk95ZCTYYwlpgeyaMKsnN3C~x9TJA8K8T44v7vE6--Nw4Z4zjepwkIOht9iQsA6D"
        "6wRUQpeYX8bjIyYDPC7GUHq0WhXR6E6Ojc9k8V5uh0SZ-rCQX6sccdk3JbyRhjGP4rSKr6MmvxVVsqBjcbpxsg=="),
]


def rng_from(seed: int):
    generator = random.Random(seed)
    return lambda n: generator.randbytes(n)


def pi_times_power_of_two(bits: int) -> int:
    """floor(2^bits * pi) by Machin's formula in integers, with 64 guard bits."""
    one = 1 << (bits + 64)

    def arctan_inverse(x: int) -> int:
        total, term, n, sign = 0, one // x, 1, 1
        while term:
            total += sign * (term // n)
            term //= x * x
            n += 2
            sign = -sign
        return total
    return (4 * (4 * arctan_inverse(5) - arctan_inverse(239))) >> 64


def test_group_is_rfc3526_group_14():
    # the prime's defining formula (cryptography.rst): 2^2048 - 2^1984 - 1 + 2^64 * (floor(2^1918 pi) + 124476)
    assert elgamal.P.bit_length() == 2048 and elgamal.P % 2**64 == 2**64 - 1 and elgamal.P >> 1984 == 2**64 - 1
    assert elgamal.P == 2**2048 - 2**1984 - 1 + 2**64 * (pi_times_power_of_two(1918) + 124476)
    assert pow(elgamal.G, (elgamal.P - 1) // 2, elgamal.P) == 1   # 2 generates the subgroup of order (p-1)/2


def test_java_i2p_public_key_matches_private_key():
    assert elgamal.public_from_private(b64decode(PRIVATE_KEY)) == b64decode(PUBLIC_KEY)


@pytest.mark.parametrize("index", range(len(ENCRYPTED)))
def test_java_i2p_compatibility_vectors_decrypt(index):
    block = b64decode(ENCRYPTED[index])
    assert len(block) == elgamal.BLOCK_LEN
    assert elgamal.decrypt(b64decode(PRIVATE_KEY), block) == UNENCRYPTED[index]


def test_round_trip_is_deterministic_under_an_injected_rng():
    private = elgamal.generate_private(rng_from(1))
    public = elgamal.public_from_private(private)
    data = bytes(range(222))
    block = elgamal.encrypt(public, data, rng_from(2))
    assert block == elgamal.encrypt(public, data, rng_from(2))
    assert len(block) == 514 and block[0] == 0 and block[257] == 0
    assert elgamal.decrypt(private, block) == data
    # the vectors' key reads what we write to it
    assert elgamal.decrypt(b64decode(PRIVATE_KEY), elgamal.encrypt(b64decode(PUBLIC_KEY), b"abc", rng_from(3))) \
        == b"abc"


def test_wrong_key_or_corrupt_block_fails_the_hash_check():
    private, other = elgamal.generate_private(rng_from(4)), elgamal.generate_private(rng_from(5))
    block = elgamal.encrypt(elgamal.public_from_private(private), b"x" * 222, rng_from(6))
    with pytest.raises(CryptoError):
        elgamal.decrypt(other, block)
    corrupt = bytearray(block)
    corrupt[400] ^= 1
    with pytest.raises(CryptoError):
        elgamal.decrypt(private, bytes(corrupt))


@pytest.mark.parametrize("block", [b"", bytes(513), bytes(515), bytes(514), b"\xff" * 514,
                                   bytes(1) + b"\xff" * 256 + bytes(257)])
def test_malformed_blocks_raise_protocol_errors(block):
    with pytest.raises(ProtocolError):
        elgamal.decrypt(elgamal.generate_private(rng_from(7)), block)


def test_encrypt_refuses_oversized_data_and_bad_keys():
    public = elgamal.public_from_private(elgamal.generate_private(rng_from(8)))
    with pytest.raises(ValueError):
        elgamal.encrypt(public, bytes(223))
    for bad in (bytes(256), (1).to_bytes(256, "big"), b"\xff" * 256, bytes(32)):
        with pytest.raises(CryptoError):
            elgamal.encrypt(bad, b"x")
