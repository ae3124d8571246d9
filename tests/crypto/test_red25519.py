"""Red25519: the 10 vectors of red25519.rst "Test vectors", blinding, and both signature forms."""
import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings, strategies as st

from core.crypto import edwards25519, red25519
from core.data.errors import CryptoError, SignatureError

# (edsk, edpk, sk, msg, sig, alpha, rsk, rvk, rsig); vk == edpk in every vector
VECTORS = [
    ("0101010101010101010101010101010101010101010101010101010101010101",
     "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c",
     "58e86efb75fa4e2c410f46e16de9f6acae1a1703528651b69bc176c088bef36e",
     "0202020202020202020202020202020202020202020202020202020202020202",
     "61f5527f4d3b46de4b2c234390370bf715ae9098907a0d191ba1b44b23a8ac1a"
     "6a40437a5294e9503faaf9bd2b7f2fe7ba44dec487b3185aba7ff7d7a17cd40f",
     "ae9ba9cbbc047c442448fca7c9f4e288a202ed520bfad0c784b792b7773cee08",
     "8bb85f3c7a494a08890d7d142109c1a3501d04565d80227e2079097800fbe107",
     "6fe128737b8e76fa66698a748b0dc0a89168dd8a0601c2b1c0b26835d323e9b3",
     "533053074d3b44f08723aab988ede9880a001b7a684d4a98f2d1b88fabee07a5"
     "b5c9430c69a690321e0cb8365d7aeb6688bcbad2c0780e0c69e8a1b4a45f3001"),
    ("0202020202020202020202020202020202020202020202020202020202020202",
     "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394",
     "a83c626bc9c38c8c201878ebb1d5b0b50ac40e8986c78793db1d4ef369fca14e",
     "0303030303030303030303030303030303030303030303030303030303030303",
     "0829e58eb5399870f009bd1f0270264e556424bda7a93fbcec99f6d9d75db46d"
     "5c3cb546d9947ca7c1200876c8775a90c357a2aef3d2f16388242ee1914b1a0a",
     "98b615d9027e996cc2796c019d9c8beb46aa7d2b6eea2e5d98eb29eb1584c203",
     "9fcfaa734852ca40b3810ebef590e138516e8cb4f4b1b6f0730978de7f806402",
     "527e121090158419609e4a0d8de6f7d3271b353a8cd0b8172fe41468ea1e9177",
     "9a6961f35ed264a946cd6214b2326a6e6caa426c2a61bc14367fd278e0b5fb51"
     "3ac065a69210a457f17d12ba8a496cfd835002691affa8efcdecae48135c090f"),
    ("0303030303030303030303030303030303030303030303030303030303030303",
     "ed4928c628d1c2c6eae90338905995612959273a5c63f93636c14614ac8737d1",
     "98aebbb178a551876bfaf8e1e530dac6aaf6c2ea1c8f8406a3ab37dfb40fbc65",
     "0404040404040404040404040404040404040404040404040404040404040404",
     "ef5fd1488048fb0247e5883bd90f7b2ce1ffe9b143a5bf6156b76ac2c39d8fdb"
     "d0730d7111d9cec69a808f3d18268a91f035b41b82c1fe06f394a615f93a8709",
     "ba17f5110fcea8a12e0bd3677e4088b874332c4e3e6c9911d9ec3fe0233d3e0a",
     "c4ceed95e9208c189458fe772c9628021f2aef385bfb1d187c9877bfd84cfa0f",
     "6e2b9b129bbe00fa964c996d40307dd01aff120e94fd15f17119341ecda3d7a0",
     "900ecc6306f895a8ccde97d3624799fd939062a87b69e09351903ba83ceeab2b"
     "ef6e3c15e5d8400ed9151f7dce14bf4cfc7ce3f4399e22455fc18a68ed931c03"),
    ("0404040404040404040404040404040404040404040404040404040404040404",
     "ca93ac1705187071d67b83c7ff0efe8108e8ec4530575d7726879333dbdabe7c",
     "483e3c145d7e680a16676925fc045183d2f510cb2f660a1fc517c73762185d43",
     "0505050505050505050505050505050505050505050505050505050505050505",
     "d76b8133e08e4ff58de6b7f2df95c84a8bb968addd1d1ff585d79a90f5cfe11f"
     "9aa21d0277908aecae3853ee44493f95f2445df2da712f28eea435044e6fed03",
     "9a14f2755512a72a3a5a514379f3458c3f912fc5eba8711b0cf2bfda49c79104",
     "2e0357164904c6d4f64ddcdcfa101bbc118740901b0f7c3ad1098712acdfee07",
     "de0a291ee45634de9a051c9373b9378ffbe45a8532067a9a93a86b837c762908",
     "010dcc6a44e942a6f7d52704d957ad66a5c6452ad9b9442cc8ef724e41d6c3ce"
     "a24eace9b22e0f9d2b9ade14c61bded33286e7e6340faaa0167a9f1f90001503"),
    ("0505050505050505050505050505050505050505050505050505050505050505",
     "6e7a1cdd29b0b78fd13af4c5598feff4ef2a97166e3ca6f2e4fbfccd80505bf1",
     "48370d6146de919cc1ce472897775d9a6c2834c509e08e14efcb2b52188f946e",
     "0606060606060606060606060606060606060606060606060606060606060606",
     "2c56c96801f99ae1f5e8d8edc87725e08aaf7fc77071f222f7c46084b41c5b41"
     "de1ee3df97217865633f7cceb11cedc3a637ce047d2111cb6f372882e2d6b20b",
     "687944d00a53ca02a0787da2acb8f99994ea7453c8d140d93efbc2b70d852a07",
     "35e598a6987bdb3685fdff552d5b3ea20013a918d2b1cfed2dc7ee092614bf05",
     "9951414e4f29408031f212edc6c9cfe36550b4ce2aa968db49de6c93ca9d565b",
     "4b8f3e3baa8b4fdb99b0053036d569352e49c98c61800288f676aed77b9929b3"
     "f3278565d824c5566666d2c9ff789207098d5f9d09dd89aa4945ca3866831e02"),
    ("0606060606060606060606060606060606060606060606060606060606060606",
     "8a875fff1eb38451577acd5afee405456568dd7c89e090863a0557bc7af49f17",
     "a83f248f80ff04de20a82fe12bd3551887168e372d239932ce812d0992d34078",
     "0707070707070707070707070707070707070707070707070707070707070707",
     "f4a00093daa26b48465e07ee5697ba44191fb5673b6ab71a31d2349a18aecbd6"
     "c4801be60ebf18cd7ce8ec5fe0988fc4762908095063b55068ce4c7578c91504",
     "0158cda553d7e9769829a5d36d2b7ce05e9171d8d058a8630d31029001ffd409",
     "41f8424d01be5b9406eb179da42fda51e5a7ff0ffe7b4196dbb22f9993d21502",
     "cef5dc9b4a246025df56fb118e34c3f06d6213c4c6ab8a1d4297eb7845cb2824",
     "de23eec573f35ebf7ea9539b511ca5129213821525190fdf1c186c2788c1abb3"
     "5bd40937defbc4112225d399a79a171cf02c3eebbd6340bbdca7383906af1902"),
    ("0707070707070707070707070707070707070707070707070707070707070707",
     "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c",
     "28ad39fefd7fa3e200a9c626eef599e61a2d055c48a8288a4e7e4c4bca392878",
     "0808080808080808080808080808080808080808080808080808080808080808",
     "e78bf2d340d9ae0af5dd81e4d58801b3872189a71573a12be343ed39cebab56a"
     "6bc1f01872bbb1d16b2be4a943a9ba90fb7a4c97c3e5f20416890ceedf6e7e0c",
     "8e16161802e3c87857ae725dfa28d6222b326907f652e6c89f806882c0fb1a00",
     "3bf8968b47adebf27b0d740fd2495777455f6e633efb0e53eefeb4cd8a354308",
     "755a8f05633c45d0fac471a386776f63a7d28bc8d80e326ddde5484b20565e89",
     "6efdca4ba705bc05d4564f0ca626646679ac1cb2c3093618e95238ebd1c7aa09"
     "632ccefc324594447a01074bb473c3ce94ccaae86e18f8f43477326a12ae6207"),
    ("0808080808080808080808080808080808080808080808080808080808080808",
     "1398f62c6d1a457c51ba6a4b5f3dbd2f69fca93216218dc8997e416bd17d93ca",
     "3826c9c31226edde9501fd2589203cb3e6fe737876a845512b53ada2fa2ace74",
     "0909090909090909090909090909090909090909090909090909090909090909",
     "1ed88a926dd80999d3a40efd3b74fa731729e28bb84e0430663822a69f9f4bcc"
     "fd2bd0aa7325d9887eac76ddf08da65c42eedaaec244c3241307570910778f05",
     "c4cc56d9c3e787ca60a54dfca65b4556f2dccabcac97e7a975e4efa1acb8920e",
     "945371b503f5e1e843c08d0a3bad8962d8db3e3523402dfba0379d44a7e36003",
     "db1730a0730ca0746a73f1880660ea5ea42f9d931760f3cdedc9cbe1c1d1b8d9",
     "db60c64b61e888696ca0a7ef7adb92b784e0e6070d0435818e99788022db8e83"
     "81ddcc1e27f044b8c3c75044e715d870f3273a7f9cf85f1a59f4a7c95fded408"),
    ("0909090909090909090909090909090909090909090909090909090909090909",
     "fd1724385aa0c75b64fb78cd602fa1d991fdebf76b13c58ed702eac835e9f618",
     "388fe3ab30c0aabf54acd276f3d8bbbc2b7ca4a9495d204f255bacf578c74c46",
     "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a",
     "dd5a8c6ed9331c074ea11f65b9290900931bdf01a47f01adc75583d2a3dcfc10"
     "b65c77a3e992678865e7dc713295749b4dddd33fa167b96c6d6904818e4d6806",
     "b851f206eba78325ed5231cad059e8bd8a1e3d7f1e391058b3d9ab08d096cb03",
     "3c91fe3eb2dbe484e88b25b5494b2827b69ae128689630a7d83458fe485e180a",
     "601ab762eea5cd89ff34e0f661d1ca3932ba166ca67154b2e62afb85282dda81",
     "5a453378fdbb22b8f037ad61d144ce006201fea0c2c1472d463617c432786dfc"
     "47430d27649817a7fc26296c94bf922f3863867c648ddd6709710bfa199aee02"),
    ("0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a",
     "43a72e714401762df66b68c26dfbdf2682aaec9f2474eca4613e424a0fbafd3c",
     "0099bf92c41b5d3d309c3b074756e9707e40a9bcea229857f7cf551e8bb0fd45",
     "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
     "c54d64d550f7690ffdd108efc49f1c25a54282825e10328630710924b354cb4c"
     "138a523b1ada66a8fdc8b7efcae939fd54b05552c30ca280d23199c391c5b707",
     "5eebb60818299d581fa68f5fcae4c2bb398a7e10876e27994d93d555075e7d05",
     "aa349f2773b8b035f6ceecda965330d9b7ca27cd7191bff044632b74920e7b0b",
     "d0c5fe8f83fd42202265efff804a1527c0eb0e1cce9781cf14571cd506eeed36",
     "28e96b6d4251b356e635e382ed89a37e7650d3035f98909e09a6cbe82c13e418"
     "fddb2106b7b527e198039da7221dae1a0227f0a4ab88f06567e8fd9238acc106"),
]


def seeded_rng(seed: int):
    generator = random.Random(seed)
    return lambda n: generator.randbytes(n)


@pytest.mark.parametrize("vector", VECTORS, ids=[f"vector{i + 1}" for i in range(len(VECTORS))])
def test_red25519_rst_vectors(vector):
    edsk, edpk, sk, msg, sig, alpha, rsk, rvk, rsig = map(bytes.fromhex, vector)
    assert Ed25519PrivateKey.from_private_bytes(edsk).public_key().public_bytes_raw() == edpk
    assert red25519.private_from_ed25519(edsk) == sk
    assert red25519.public_from_private(sk) == edpk  # CONVERT_ED25519_PUBLIC is the identity
    assert red25519.verify_personalized(edpk, msg, sig)
    assert red25519.blind_private(sk, alpha) == rsk
    assert red25519.blind_public(edpk, alpha) == rvk
    assert red25519.public_from_private(rsk) == rvk
    assert red25519.verify_personalized(rvk, msg, rsig)
    assert not red25519.verify_personalized(edpk, msg, rsig)
    assert not red25519.verify_personalized(rvk, msg[:-1], rsig)
    # the spec's signatures use the personalized hash, so the network (Ed25519) form rejects them
    assert not red25519.verify(edpk, msg, sig)


def test_personalized_sign_round_trip_with_blinding():
    sk = red25519.generate_private(seeded_rng(1))
    alpha = red25519.generate_alpha(seeded_rng(2))
    rsk = red25519.blind_private(sk, alpha)
    rvk = red25519.blind_public(red25519.public_from_private(sk), alpha)
    signature = red25519.sign_personalized(rsk, b"hello", seeded_rng(3))
    assert red25519.verify_personalized(rvk, b"hello", signature)
    assert not red25519.verify_personalized(red25519.public_from_private(sk), b"hello", signature)


def test_network_sign_round_trip_with_blinding():
    sk = red25519.private_from_ed25519(bytes(range(32)))
    alpha = red25519.generate_alpha(seeded_rng(4))
    rsk = red25519.blind_private(sk, alpha)
    rvk = red25519.blind_public(red25519.public_from_private(sk), alpha)
    signature = red25519.sign(rsk, b"ls2", seeded_rng(5))
    assert red25519.verify(rvk, b"ls2", signature)
    assert not red25519.verify(rvk, b"ls3", signature)


def test_signing_uses_the_injected_rng():
    sk = red25519.generate_private(seeded_rng(6))
    assert red25519.sign(sk, b"m", seeded_rng(7)) == red25519.sign(sk, b"m", seeded_rng(7))
    assert red25519.sign(sk, b"m", seeded_rng(7)) != red25519.sign(sk, b"m", seeded_rng(8))


def test_generated_private_keys_are_reduced():
    for seed in range(20):
        assert int.from_bytes(red25519.generate_private(seeded_rng(seed)), "little") < red25519.L
    assert red25519.reduce_scalar(red25519.L.to_bytes(32, "little")) == bytes(32)


def test_message_length_limit():
    sk = red25519.generate_private(seeded_rng(9))
    vk = red25519.public_from_private(sk)
    longest = bytes(red25519.MAX_PERSONALIZED_MESSAGE)
    assert red25519.verify_personalized(vk, longest, red25519.sign_personalized(sk, longest, seeded_rng(1)))
    with pytest.raises(SignatureError):
        red25519.sign_personalized(sk, longest + b"x", seeded_rng(1))
    assert not red25519.verify_personalized(vk, longest + b"x", bytes(64))


def test_bad_inputs():
    with pytest.raises(CryptoError):
        red25519.blind_public(b"\xff" * 32, bytes(32))  # y >= p
    with pytest.raises(CryptoError):
        red25519.public_from_private(bytes(31))
    with pytest.raises(CryptoError):
        red25519.private_from_ed25519(bytes(33))
    vk = red25519.public_from_private(red25519.generate_private(seeded_rng(10)))
    l_bytes = red25519.L.to_bytes(32, "little")
    assert not red25519.verify_personalized(vk, b"", bytes(32) + l_bytes)  # S >= L
    assert not red25519.verify_personalized(vk, b"", b"\xff" * 64)
    # y = 0 is a point of order 4: with R the same point and S = 0 the cofactored equation holds
    assert not red25519.verify_personalized(bytes(32), b"", bytes(64))


def test_edwards25519_matches_library_base_multiplication():
    for seed in range(5):
        scalar = int.from_bytes(seeded_rng(seed)(32), "little") % red25519.L
        assert edwards25519.encode_point(edwards25519.multiply_base(scalar)) == \
            red25519.public_from_private(scalar.to_bytes(32, "little"))
    assert edwards25519.is_identity(edwards25519.multiply(red25519.L, edwards25519.BASE))
    assert edwards25519.encode_point(edwards25519.BASE).hex() == "58" + "66" * 31


@settings(max_examples=40, deadline=None)
@given(public_key=st.binary(min_size=32, max_size=32), signature=st.binary(min_size=64, max_size=64),
       message=st.binary(max_size=64))
def test_random_bytes_never_raise(public_key, signature, message):
    assert red25519.verify_personalized(public_key, message, signature) is False
    assert red25519.verify(public_key, message, signature) is False
