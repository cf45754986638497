//===- Safetensors.cpp - read and write .safetensors files ----------------===//
#include "common/Safetensors.h"

#include "common/FileIO.h"
#include "common/MiniJson.h"

#include <cmath>
#include <cstring>

namespace aim {

namespace {
bool parseDType(const std::string &name, DType &out) {
  static const std::pair<const char *, DType> known[] = {{"F32", DType::F32},
                                                         {"F64", DType::F64},
                                                         {"I32", DType::I32},
                                                         {"I64", DType::I64}};
  for (const auto &[n, d] : known)
    if (name == n) {
      out = d;
      return true;
    }
  return false;
}

bool isNonNegativeInteger(const JsonValue &v) {
  return v.kind == JsonValue::Kind::Number && v.number >= 0 &&
         v.number == std::floor(v.number) && v.number < 9.0e15;
}
} // namespace

StatusOr<NamedTensors> readSafetensors(const std::string &path) {
  StatusOr<std::string> file = readWholeFile(path);
  if (!file)
    return file.status();
  const std::string &data = *file;
  auto bad = [&](const std::string &what) {
    return Status::error("'" + path +
                         "' is not a valid safetensors file: " + what);
  };
  if (data.size() < 8)
    return bad("shorter than the 8-byte header length");
  uint64_t headerSize;
  std::memcpy(&headerSize, data.data(), 8);
  if (headerSize > data.size() - 8)
    return bad("header length " + std::to_string(headerSize) +
               " exceeds the file size " + std::to_string(data.size()));
  StatusOr<JsonValue> header = parseJson(data.substr(8, headerSize));
  if (!header)
    return bad(header.status().message());
  if (header->kind != JsonValue::Kind::Object)
    return bad("the header is not a JSON object");
  size_t dataStart = 8 + headerSize;
  size_t dataSize = data.size() - dataStart;

  NamedTensors tensors;
  for (const auto &[name, entry] : header->object) {
    if (name == "__metadata__")
      continue;
    const JsonValue *dtype = entry.find("dtype");
    const JsonValue *shape = entry.find("shape");
    const JsonValue *offsets = entry.find("data_offsets");
    if (!dtype || dtype->kind != JsonValue::Kind::String || !shape ||
        shape->kind != JsonValue::Kind::Array || !offsets ||
        offsets->kind != JsonValue::Kind::Array || offsets->array.size() != 2)
      return bad("tensor '" + name +
                 "' needs dtype, shape and data_offsets [begin, end]");
    HostTensor t;
    if (!parseDType(dtype->string, t.dtype))
      return bad("tensor '" + name + "' has dtype " + dtype->string +
                 "; aimc reads F32, F64, I32 and I64");
    for (const JsonValue &d : shape->array) {
      if (!isNonNegativeInteger(d))
        return bad("tensor '" + name +
                   "' has a shape entry that is not a "
                   "non-negative integer");
      t.shape.push_back(static_cast<int64_t>(d.number));
    }
    if (!isNonNegativeInteger(offsets->array[0]) ||
        !isNonNegativeInteger(offsets->array[1]))
      return bad("tensor '" + name + "' has invalid data_offsets");
    auto begin = static_cast<uint64_t>(offsets->array[0].number);
    auto end = static_cast<uint64_t>(offsets->array[1].number);
    uint64_t expected;
    if (!checkedByteCount(t.shape, dtypeSize(t.dtype), expected))
      return bad("tensor '" + name + "' has shape " + shapeToString(t.shape) +
                 ", too large for any file");
    if (end < begin || end > dataSize || end - begin != expected)
      return bad("tensor '" + name + "' with shape " + shapeToString(t.shape) +
                 " and dtype " + dtype->string + " needs " +
                 std::to_string(expected) + " bytes but data_offsets [" +
                 std::to_string(begin) + ", " + std::to_string(end) +
                 ") give " + std::to_string(end >= begin ? end - begin : 0) +
                 " within a data section of " + std::to_string(dataSize) +
                 " bytes (truncated file?)");
    t.bytes.assign(data.begin() + dataStart + begin,
                   data.begin() + dataStart + end);
    tensors.emplace_back(name, std::move(t));
  }
  return tensors;
}

Status writeSafetensors(const std::string &path, const NamedTensors &tensors) {
  std::string header = "{";
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto &[name, t] = tensors[i];
    std::string shape;
    for (size_t d = 0; d < t.shape.size(); ++d)
      shape += (d ? "," : "") + std::to_string(t.shape[d]);
    header += (i ? "," : "");
    header += "\"" + escapeJsonString(name) + "\":{\"dtype\":\"" +
              dtypeName(t.dtype) + "\",\"shape\":[" + shape +
              "],\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(offset + t.bytes.size()) + "]}";
    offset += t.bytes.size();
  }
  header += "}";
  // The format asks that the data start on an 8-byte boundary.
  while ((header.size() % 8) != 0)
    header += ' ';
  std::string out(8, '\0');
  uint64_t headerSize = header.size();
  std::memcpy(out.data(), &headerSize, 8);
  out += header;
  for (const auto &[name, t] : tensors)
    out.append(reinterpret_cast<const char *>(t.bytes.data()), t.bytes.size());
  return writeFileAtomically(path, out);
}

} // namespace aim
