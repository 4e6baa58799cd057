// A small JSON reader for tests that check what a program printed: objects,
// arrays, strings (with \" \\ \/ \uXXXX below 0x80), numbers, true, false,
// null. Throws std::runtime_error on anything else.
#pragma once

#include <cstdlib>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace test_support {

struct Json {
    enum class Type { null, boolean, number, string, array, object } type = Type::null;
    bool boolean = false;
    double number = 0;
    std::string string;
    std::vector<Json> array;
    std::map<std::string, Json> object;

    const Json& operator[](const std::string& key) const {
        auto it = object.find(key);
        if (type != Type::object || it == object.end()) throw std::runtime_error("no key " + key);
        return it->second;
    }
    const Json& operator[](std::size_t i) const {
        if (type != Type::array || i >= array.size()) throw std::runtime_error("no index " + std::to_string(i));
        return array[i];
    }
    bool has(const std::string& key) const { return type == Type::object && object.count(key) != 0; }
    bool is_null() const { return type == Type::null; }
    double num() const { return type == Type::number ? number : throw std::runtime_error("not a number"); }
    const std::string& str() const {
        if (type != Type::string) throw std::runtime_error("not a string");
        return string;
    }
};

class JsonReader {
public:
    explicit JsonReader(const std::string& text) : text_(text) {}
    Json document() {
        Json value = read();
        skip();
        if (at_ != text_.size()) fail("text after the document");
        return value;
    }

private:
    [[noreturn]] void fail(const std::string& what) {
        throw std::runtime_error("JSON: " + what + " at " + std::to_string(at_));
    }
    void skip() {
        while (at_ < text_.size() && (text_[at_] == ' ' || text_[at_] == '\n' || text_[at_] == '\t' || text_[at_] == '\r')) ++at_;
    }
    char peek() {
        skip();
        if (at_ >= text_.size()) fail("unexpected end");
        return text_[at_];
    }
    void expect(char c) {
        if (peek() != c) fail(std::string("expected ") + c);
        ++at_;
    }
    bool literal(const char* word) {
        std::string w(word);
        if (text_.compare(at_, w.size(), w) != 0) return false;
        at_ += w.size();
        return true;
    }
    std::string read_string() {
        expect('"');
        std::string out;
        while (at_ < text_.size() && text_[at_] != '"') {
            char c = text_[at_++];
            if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
            if (c != '\\') {
                out += c;
                continue;
            }
            if (at_ >= text_.size()) fail("unfinished escape");
            char e = text_[at_++];
            switch (e) {
            case '"': case '\\': case '/': out += e; break;
            case 'n': out += '\n'; break;
            case 't': out += '\t'; break;
            case 'r': out += '\r'; break;
            case 'u': {
                if (at_ + 4 > text_.size()) fail("short \\u");
                long code = std::strtol(text_.substr(at_, 4).c_str(), nullptr, 16);
                at_ += 4;
                if (code >= 0x80) fail("\\u beyond ASCII");
                out += char(code);
                break;
            }
            default: fail("bad escape");
            }
        }
        if (at_ >= text_.size()) fail("unfinished string");
        ++at_;
        return out;
    }
    Json read() {
        Json v;
        char c = peek();
        if (c == '{') {
            ++at_;
            v.type = Json::Type::object;
            if (peek() == '}') return ++at_, v;
            for (;;) {
                std::string key = read_string();
                expect(':');
                v.object[key] = read();
                if (peek() == ',') { ++at_; continue; }
                expect('}');
                return v;
            }
        }
        if (c == '[') {
            ++at_;
            v.type = Json::Type::array;
            if (peek() == ']') return ++at_, v;
            for (;;) {
                v.array.push_back(read());
                if (peek() == ',') { ++at_; continue; }
                expect(']');
                return v;
            }
        }
        if (c == '"') {
            v.type = Json::Type::string;
            v.string = read_string();
            return v;
        }
        if (literal("true")) { v.type = Json::Type::boolean; v.boolean = true; return v; }
        if (literal("false")) { v.type = Json::Type::boolean; return v; }
        if (literal("null")) return v;
        std::size_t start = at_;
        while (at_ < text_.size() && std::string("-+.eE0123456789").find(text_[at_]) != std::string::npos) ++at_;
        if (at_ == start) fail("unexpected character");
        v.type = Json::Type::number;
        v.number = std::strtod(text_.substr(start, at_ - start).c_str(), nullptr);
        return v;
    }

    const std::string& text_;
    std::size_t at_ = 0;
};

inline Json parse_json(const std::string& text) { return JsonReader(text).document(); }

}  // namespace test_support
