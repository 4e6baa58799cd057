// Crypto helpers against the independent vectors in ../shared/vectors.
#include <doctest/doctest.h>

#include "temp_dir.hpp"

#include "crypto/crypto.hpp"

#include "crypto/shared_key_cache.hpp"
#include "vectors.hpp"

#include <algorithm>
#include <cstring>
#include <sys/stat.h>
#include <unistd.h>

using namespace dtcall;
using namespace test_support;

namespace {

using test_support::TempDir;
using test_support::write_file;

const auto& V() {
    static const auto v = load_vectors();
    return v;
}

SecretKey secret(const std::string& name) { return SecretKey(hex(V().at(name)).data()); }
PublicKey pub(const std::string& name) {
    PublicKey k;
    auto b = hex(V().at(name));
    std::memcpy(k.bytes.data(), b.data(), key_size);
    return k;
}
Nonce nonce(const std::string& name) {
    Nonce n;
    auto b = hex(V().at(name));
    std::memcpy(n.data(), b.data(), nonce_size);
    return n;
}

}  // namespace

TEST_CASE("libsodium starts") { CHECK(crypto_init()); }

TEST_CASE("stringify matches the vector and round-trips") {
    CHECK(stringify(hex(V().at("stringify_input"))) == V().at("stringify_output"));
    auto back = unstringify(V().at("stringify_output"));
    REQUIRE(back);
    CHECK(*back == hex(V().at("stringify_input")));
}

TEST_CASE("unstringify rejects what is not three digits per byte") {
    CHECK_FALSE(unstringify("12"));
    CHECK_FALSE(unstringify("256"));
    CHECK_FALSE(unstringify("12a"));
    CHECK_FALSE(unstringify("999000"));
    CHECK(unstringify("")->empty());
}

TEST_CASE("public halves of the vector keys") {
    CHECK(KeyPair::from_secret(secret("server_secret")).public_key == pub("server_public"));
    CHECK(KeyPair::from_secret(secret("alice_secret")).public_key == pub("alice_public"));
    CHECK(KeyPair::from_secret(secret("ephemeral_secret")).public_key == pub("ephemeral_public"));
}

TEST_CASE("key files: the shared files parse and are reproduced byte for byte") {
    for (std::string who : {"server", "alice"}) {
        std::string pub_text = read_file(vectors_dir() + "/" + who + "_public.na");
        std::string priv_text = read_file(vectors_dir() + "/" + who + "_private.na");
        CHECK(pub_text.size() == 114);
        CHECK(priv_text.size() == 115);
        auto p = read_public_key_file(vectors_dir() + "/" + who + "_public.na");
        auto s = read_private_key_file(vectors_dir() + "/" + who + "_private.na");
        REQUIRE(p);
        REQUIRE(s);
        CHECK(*p == pub(who + "_public"));
        CHECK(std::memcmp(s->data(), secret(who + "_secret").data(), key_size) == 0);
        CHECK(public_key_file_text(*p) == pub_text);
        CHECK(private_key_file_text(*s) == priv_text);
    }
}

TEST_CASE("key files: malformed text gives a reason") {
    std::string good = public_key_file_text(pub("alice_public"));
    CHECK(parse_public_key_file(good + "\n"));     // tolerated on reading
    CHECK(parse_public_key_file(good + "\r\n"));
    CHECK_FALSE(parse_public_key_file(good + "\n\n"));
    CHECK_FALSE(parse_public_key_file(good.substr(0, good.size() - 1)));
    CHECK_FALSE(parse_public_key_file(good + "0"));
    CHECK_FALSE(parse_public_key_file(""));
    CHECK_FALSE(parse_private_key_file(good));  // wrong header
    std::string big = good;
    big.replace(18, 3, "256");
    auto r = parse_public_key_file(big);
    CHECK_FALSE(r);
    CHECK(r.error().find("255") != std::string::npos);
    std::string letter = good;
    letter[20] = 'x';
    CHECK_FALSE(parse_public_key_file(letter));
    auto hdr = parse_public_key_file("SODIUM PUBLIC KEY " + good.substr(18));
    CHECK_FALSE(hdr);
    CHECK(hdr.error().find("SODIUM PUBLIC KEY") != std::string::npos);
}

TEST_CASE("PublicKey::from_digits reads the 96-digit form of the vector keys and key files") {
    for (std::string who : {"server", "alice"}) {
        CAPTURE(who);
        std::string text = read_file(vectors_dir() + "/" + who + "_public.na");
        std::string digits = text.substr(public_key_header.size());
        REQUIRE(digits.size() == 96);
        auto key = PublicKey::from_digits(digits);
        REQUIRE(key);
        CHECK(*key == pub(who + "_public"));
        CHECK(key->to_digits() == digits);
        CHECK(*key == *parse_public_key_file(text));
        CHECK(public_key_file_text(*key) == text);
    }
    // The stringify vector, byte for byte, inside a key.
    PublicKey k;
    auto input = hex(V().at("stringify_input"));
    std::copy(input.begin(), input.end(), k.bytes.begin());
    CHECK(k.to_digits().substr(0, 15) == V().at("stringify_output"));
    CHECK(k.to_digits().substr(15) == std::string(81, '0'));
    CHECK(*PublicKey::from_digits(k.to_digits()) == k);
    CHECK(*PublicKey::from_digits(std::string(96, '0')) == PublicKey{});
    std::string all_255;
    for (int i = 0; i < 32; ++i) all_255 += "255";
    auto top = PublicKey::from_digits(all_255);
    REQUIRE(top);
    for (auto byte : top->bytes) CHECK(byte == 255);
}

TEST_CASE("PublicKey::from_digits says what is wrong") {
    std::string good = pub("alice_public").to_digits();
    auto error_of = [](std::string_view digits) {
        auto r = PublicKey::from_digits(digits);
        CHECK_FALSE(r);
        return r.ok() ? std::string() : r.error();
    };
    CHECK(error_of("") == "key must be exactly 96 digits, found 0 characters");
    CHECK(error_of(good.substr(0, 95)) == "key must be exactly 96 digits, found 95 characters");
    CHECK(error_of(good + "0") == "key must be exactly 96 digits, found 97 characters");
    CHECK(error_of(good + "\n") == "key must be exactly 96 digits, found 97 characters");  // no newline here
    CHECK(error_of(std::string(public_key_header) + good).find("found 114 characters") != std::string::npos);
    std::string letter = good;
    letter[40] = 'x';
    CHECK(error_of(letter) == "key character 41 of 96 is not a digit");
    std::string space = good;
    space[0] = ' ';
    CHECK(error_of(space) == "key character 1 of 96 is not a digit");
    std::string sign = good;
    sign[95] = '-';
    CHECK(error_of(sign) == "key character 96 of 96 is not a digit");
    std::string big = good;
    big.replace(3, 3, "256");
    CHECK(error_of(big) == "key byte 2 (characters 4-6) is a triple above 255");
    big.replace(93, 3, "999");
    big.replace(3, 3, "000");
    CHECK(error_of(big) == "key byte 32 (characters 94-96) is a triple above 255");
    // Key files report the same reasons.
    std::string file = public_key_file_text(pub("alice_public"));
    file[20] = 'x';
    CHECK(parse_public_key_file(file).error() == "key character 3 of 96 is not a digit");
}

TEST_CASE("key files: read errors name the path; huge files are refused") {
    TempDir dir;
    auto missing = read_public_key_file(dir.path + "/nope.na");
    CHECK_FALSE(missing);
    CHECK(missing.error().find(dir.path + "/nope.na") != std::string::npos);
    CHECK_FALSE(read_public_key_file("/dev/zero"));
    CHECK_FALSE(read_public_key_file(dir.path));
    {
        FILE* f = fopen((dir.path + "/big.na").c_str(), "w");
        for (int i = 0; i < 10000; ++i) fputs("SODIUM PUBLIC KEY\n", f);
        fclose(f);
    }
    auto big = read_public_key_file(dir.path + "/big.na");
    CHECK_FALSE(big);
    CHECK(big.error().find("larger than") != std::string::npos);
}

TEST_CASE("write_key_files: canonical, private 0600, never overwrites") {
    TempDir dir;
    KeyPair pair = KeyPair::generate();
    std::string pub_path = dir.path + "/bob_public.na", priv_path = dir.path + "/bob_private.na";
    REQUIRE(write_key_files(pair, pub_path, priv_path));
    struct stat st {};
    REQUIRE(stat(priv_path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(read_file(pub_path) == public_key_file_text(pair.public_key));
    CHECK(read_file(priv_path) == private_key_file_text(pair.secret_key));
    auto again = write_key_files(KeyPair::generate(), pub_path, priv_path);
    CHECK_FALSE(again);
    CHECK(again.error().find("already exists") != std::string::npos);
    CHECK(read_file(pub_path) == public_key_file_text(pair.public_key));
}

TEST_CASE("handshake reply vector") {
    auto tcp_key = hex(V().at("tcp_key"));
    Bytes reply = seal_box_frame(secret("server_secret"), pub("ephemeral_public"), as_text(tcp_key), nonce("n1"));
    CHECK(reply.size() == 76);
    CHECK(reply == hex(V().at("handshake_reply")));
    auto opened = open_box_frame(secret("ephemeral_secret"), pub("server_public"), reply.data(), reply.size());
    REQUIRE(opened);
    CHECK(*opened == as_text(tcp_key));
}

TEST_CASE("command, heartbeat and ack frames match the vectors") {
    auto key = hex(V().at("tcp_key"));
    CHECK(seal_secret_frame(key.data(), V().at("command_text"), nonce("n2")) == hex(V().at("command_frame")));
    CHECK(seal_secret_frame(key.data(), "D", nonce("n3")) == hex(V().at("heartbeat_frame")));
    Bytes ack = seal_secret_frame(key.data(), V().at("ack_text"), nonce("n1"));
    CHECK(ack.size() == 54);
    CHECK(ack == hex(V().at("ack_frame")));
    auto frame = hex(V().at("command_frame"));
    auto text = open_secret_frame(key.data(), frame.data(), frame.size());
    REQUIRE(text);
    CHECK(*text == V().at("command_text"));
}

TEST_CASE("login1resp challenge blob matches the vector") {
    Bytes frame = seal_box_frame(secret("server_secret"), pub("alice_public"), V().at("challenge_text"), nonce("n4"));
    CHECK(frame.size() == 244);
    CHECK(frame == hex(V().at("challenge_frame")));
    std::string digits = stringify(frame);
    CHECK(digits.size() == 732);
    CHECK(digits == V().at("challenge_blob_digits"));
    auto back = unstringify(digits);
    REQUIRE(back);
    auto challenge = open_box_frame(secret("alice_secret"), pub("server_public"), back->data(), back->size());
    REQUIRE(challenge);
    CHECK(*challenge == V().at("challenge_text"));
}

TEST_CASE("a precomputed shared key seals the same challenge blob, byte for byte") {
    auto shared = SharedKey::derive(secret("server_secret"), pub("alice_public"));
    REQUIRE(shared);
    CHECK(seal_box_frame(*shared, V().at("challenge_text"), nonce("n4")) == hex(V().at("challenge_frame")));
    // Both ends derive the same key: alice's side opens what the server's sealed.
    auto reverse = SharedKey::derive(secret("alice_secret"), pub("server_public"));
    REQUIRE(reverse);
    CHECK(std::equal(shared->data(), shared->data() + key_size, reverse->data()));
    Bytes frame = seal_box_frame(*shared, "hello");
    auto opened = open_box_frame(secret("alice_secret"), pub("server_public"), frame.data(), frame.size());
    REQUIRE(opened);
    CHECK(*opened == "hello");
}

TEST_CASE("the per-user key cache derives once, stays within its capacity, and skips unusable keys") {
    KeyPair server = KeyPair::generate();
    SharedKeyCache cache(3);
    std::vector<KeyPair> users;
    for (int i = 0; i < 5; ++i) users.push_back(KeyPair::generate());
    const SharedKey* first = cache.get(server.secret_key, users[0].public_key);
    REQUIRE(first);
    auto expected = SharedKey::derive(server.secret_key, users[0].public_key);
    CHECK(std::equal(first->data(), first->data() + key_size, expected->data()));
    CHECK(cache.get(server.secret_key, users[0].public_key) == first);  // a hit, not a new entry
    CHECK(cache.size() == 1);
    for (const KeyPair& user : users) CHECK(cache.get(server.secret_key, user.public_key));
    CHECK(cache.size() == 3);
    CHECK_FALSE(cache.get(server.secret_key, PublicKey{}));
    CHECK(cache.size() == 3);
    cache.clear();
    CHECK(cache.size() == 0);
}

TEST_CASE("no shared key with a low-order public key") {
    PublicKey zero;  // all-zero: X25519 gives the identity, which libsodium refuses
    CHECK_FALSE(SharedKey::derive(KeyPair::generate().secret_key, zero));
}

TEST_CASE("frames that are forged, short or inconsistent do not open") {
    auto key = hex(V().at("tcp_key"));
    auto frame = hex(V().at("command_frame"));
    auto tampered = frame;
    tampered.back() ^= 1;
    CHECK_FALSE(open_secret_frame(key.data(), tampered.data(), tampered.size()));
    auto nonce_flip = frame;
    nonce_flip[0] ^= 1;
    CHECK_FALSE(open_secret_frame(key.data(), nonce_flip.data(), nonce_flip.size()));
    CHECK_FALSE(open_secret_frame(key.data(), frame.data(), frame.size() - 1));
    CHECK_FALSE(open_secret_frame(key.data(), frame.data(), 10));
    CHECK_FALSE(open_secret_frame(key.data(), frame.data(), 44));
    auto longer = frame;
    longer.push_back(0);
    CHECK_FALSE(open_secret_frame(key.data(), longer.data(), longer.size()));
    auto wrong_length = frame;
    wrong_length[27] ^= 2;
    CHECK_FALSE(open_secret_frame(key.data(), wrong_length.data(), wrong_length.size()));
    Bytes other_key(32, 7);
    CHECK_FALSE(open_secret_frame(other_key.data(), frame.data(), frame.size()));
}

TEST_CASE("sealed boxes: the 80-byte handshake and the 118-byte registration") {
    KeyPair server = KeyPair::generate();
    KeyPair eph = KeyPair::generate();
    Bytes sealed = seal_anonymous(server.public_key, eph.public_key.bytes.data(), key_size);
    CHECK(sealed.size() == 80);
    auto opened = open_anonymous(server, sealed.data(), sealed.size());
    REQUIRE(opened);
    CHECK(std::memcmp(opened->data(), eph.public_key.bytes.data(), key_size) == 0);
    std::string reg = "1700000000|" + random_token(59);
    CHECK(seal_anonymous(server.public_key, reinterpret_cast<const std::uint8_t*>(reg.data()), reg.size()).size() == 118);
    sealed[40] ^= 1;
    CHECK_FALSE(open_anonymous(server, sealed.data(), sealed.size()));
    CHECK_FALSE(open_anonymous(server, sealed.data(), 47));
}

TEST_CASE("random tokens: length, alphabet, not repeating") {
    std::string a = random_token(200), b = random_token(200);
    CHECK(a.size() == 200);
    CHECK(random_token(59).size() == 59);
    CHECK(a != b);
    for (char c : a) CHECK(((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')));
    // All 62 characters show up in a long token (fails with p ~ 1e-40 if fair).
    std::string many = random_token(20000);
    int seen[256] = {};
    for (unsigned char c : many) seen[c] = 1;
    int distinct = 0;
    for (int s : seen) distinct += s;
    CHECK(distinct == 62);
}

TEST_CASE("secure_equal and wipe") {
    CHECK(secure_equal("abc", "abc"));
    CHECK_FALSE(secure_equal("abc", "abd"));
    CHECK_FALSE(secure_equal("abc", "abcd"));
    CHECK(secure_equal("", ""));
    std::string s = "secret";
    wipe(s);
    CHECK(s.empty());
}

TEST_CASE("the vectors copied into tests/vectors match the ones in use") {
    const char* copy = std::getenv("DTCALL_VECTORS_COPY");
    REQUIRE(copy != nullptr);
    for (std::string name : {"VECTORS.txt", "alice_public.na", "alice_private.na", "server_public.na", "server_private.na"})
        CHECK(read_file(std::string(copy) + "/" + name) == read_file(vectors_dir() + "/" + name));
}
