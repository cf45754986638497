//===- MiniJson.cpp - a small recursive-descent JSON reader ---------------===//
#include "common/MiniJson.h"

#include <cstdlib>

namespace aim {

const JsonValue *JsonValue::find(const std::string &key) const {
  for (const auto &[k, v] : object)
    if (k == key)
      return &v;
  return nullptr;
}

namespace {
class Parser {
public:
  explicit Parser(const std::string &text) : text_(text) {}

  Status parseDocument(JsonValue &out) {
    if (Status s = parseValue(out, 0); !s)
      return s;
    skipSpace();
    if (pos_ != text_.size())
      return fail("unexpected text after the JSON value");
    return Status::ok();
  }

private:
  static constexpr int kMaxDepth = 64;

  Status fail(const std::string &what) const {
    return Status::error("JSON: " + what + " at offset " +
                         std::to_string(pos_));
  }
  void skipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' ||
                                   text_[pos_] == '\t' || text_[pos_] == '\r'))
      ++pos_;
  }
  bool consume(char c) {
    skipSpace();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool consumeWord(const char *word) {
    size_t n = std::char_traits<char>::length(word);
    if (text_.compare(pos_, n, word) != 0)
      return false;
    pos_ += n;
    return true;
  }

  Status parseValue(JsonValue &out, int depth) {
    if (depth > kMaxDepth)
      return fail("nesting too deep");
    skipSpace();
    if (pos_ >= text_.size())
      return fail("unexpected end of text");
    char c = text_[pos_];
    if (c == '{')
      return parseObject(out, depth);
    if (c == '[')
      return parseArray(out, depth);
    if (c == '"') {
      out.kind = JsonValue::Kind::String;
      return parseString(out.string);
    }
    if (consumeWord("true")) {
      out.kind = JsonValue::Kind::Bool;
      out.boolean = true;
      return Status::ok();
    }
    if (consumeWord("false")) {
      out.kind = JsonValue::Kind::Bool;
      return Status::ok();
    }
    if (consumeWord("null"))
      return Status::ok();
    return parseNumber(out);
  }

  Status parseNumber(JsonValue &out) {
    const char *begin = text_.c_str() + pos_;
    char *end = nullptr;
    double v = std::strtod(begin, &end);
    if (end == begin)
      return fail("expected a value");
    pos_ += end - begin;
    out.kind = JsonValue::Kind::Number;
    out.number = v;
    return Status::ok();
  }

  Status parseString(std::string &out) {
    ++pos_; // opening quote
    while (pos_ < text_.size()) {
      char c = text_[pos_++];
      if (c == '"')
        return Status::ok();
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= text_.size())
        break;
      char e = text_[pos_++];
      switch (e) {
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case 'r':
        out += '\r';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'u': {
        if (pos_ + 4 > text_.size())
          return fail("truncated \\u escape");
        unsigned code =
            std::strtoul(text_.substr(pos_, 4).c_str(), nullptr, 16);
        pos_ += 4;
        // Names here are ASCII; other code points are kept as UTF-8 (BMP only).
        if (code < 0x80) {
          out += static_cast<char>(code);
        } else if (code < 0x800) {
          out += static_cast<char>(0xC0 | (code >> 6));
          out += static_cast<char>(0x80 | (code & 0x3F));
        } else {
          out += static_cast<char>(0xE0 | (code >> 12));
          out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
          out += static_cast<char>(0x80 | (code & 0x3F));
        }
        break;
      }
      default:
        out += e;
        break;
      }
    }
    return fail("unterminated string");
  }

  Status parseArray(JsonValue &out, int depth) {
    ++pos_;
    out.kind = JsonValue::Kind::Array;
    if (consume(']'))
      return Status::ok();
    do {
      JsonValue element;
      if (Status s = parseValue(element, depth + 1); !s)
        return s;
      out.array.push_back(std::move(element));
    } while (consume(','));
    if (!consume(']'))
      return fail("expected ',' or ']'");
    return Status::ok();
  }

  Status parseObject(JsonValue &out, int depth) {
    ++pos_;
    out.kind = JsonValue::Kind::Object;
    if (consume('}'))
      return Status::ok();
    do {
      skipSpace();
      if (pos_ >= text_.size() || text_[pos_] != '"')
        return fail("expected a string key");
      std::string key;
      if (Status s = parseString(key); !s)
        return s;
      if (!consume(':'))
        return fail("expected ':'");
      JsonValue value;
      if (Status s = parseValue(value, depth + 1); !s)
        return s;
      out.object.emplace_back(std::move(key), std::move(value));
    } while (consume(','));
    if (!consume('}'))
      return fail("expected ',' or '}'");
    return Status::ok();
  }

  const std::string &text_;
  size_t pos_ = 0;
};
} // namespace

StatusOr<JsonValue> parseJson(const std::string &text) {
  JsonValue value;
  Parser parser(text);
  if (Status s = parser.parseDocument(value); !s)
    return s;
  return value;
}

std::string escapeJsonString(const std::string &s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

} // namespace aim
