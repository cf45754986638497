//===- Npy.cpp - read and write NumPy .npy files --------------------------===//
#include "common/Npy.h"

#include "common/FileIO.h"

#include <cctype>
#include <cstring>

namespace aim {

namespace {
/// Finds `'key':` in the header dict and returns the text after the colon.
bool findKey(const std::string &header, const std::string &key, size_t &pos) {
  size_t at = header.find("'" + key + "'");
  if (at == std::string::npos)
    return false;
  at = header.find(':', at);
  if (at == std::string::npos)
    return false;
  pos = at + 1;
  while (pos < header.size() &&
         std::isspace(static_cast<unsigned char>(header[pos])))
    ++pos;
  return true;
}

bool parseDescr(const std::string &descr, DType &out) {
  // '=' and '<' are little-endian on the machines aimc runs on.
  if (descr.size() != 3 || (descr[0] != '<' && descr[0] != '='))
    return false;
  std::string kind = descr.substr(1);
  if (kind == "f4")
    out = DType::F32;
  else if (kind == "f8")
    out = DType::F64;
  else if (kind == "i4")
    out = DType::I32;
  else if (kind == "i8")
    out = DType::I64;
  else
    return false;
  return true;
}
} // namespace

StatusOr<HostTensor> readNpy(const std::string &path) {
  StatusOr<std::string> file = readWholeFile(path);
  if (!file)
    return file.status();
  const std::string &data = *file;
  auto bad = [&](const std::string &what) {
    return Status::error("'" + path + "' is not a valid .npy file: " + what);
  };
  if (data.size() < 10 || std::memcmp(data.data(), "\x93NUMPY", 6) != 0)
    return bad("missing the \\x93NUMPY magic");
  unsigned major = static_cast<unsigned char>(data[6]);
  size_t headerLen, headerStart;
  if (major == 1) {
    headerLen = static_cast<unsigned char>(data[8]) |
                (static_cast<unsigned char>(data[9]) << 8);
    headerStart = 10;
  } else if (major == 2 || major == 3) {
    if (data.size() < 12)
      return bad("truncated header");
    uint32_t len;
    std::memcpy(&len, data.data() + 8, 4);
    headerLen = len;
    headerStart = 12;
  } else {
    return bad("unsupported format version " + std::to_string(major));
  }
  if (headerStart + headerLen > data.size())
    return bad("header runs past the end of the file");
  std::string header = data.substr(headerStart, headerLen);

  HostTensor t;
  size_t pos;
  if (!findKey(header, "descr", pos) || header[pos] != '\'')
    return bad("header has no 'descr'");
  size_t close = header.find('\'', pos + 1);
  if (close == std::string::npos)
    return bad("unterminated 'descr'");
  std::string descr = header.substr(pos + 1, close - pos - 1);
  if (!parseDescr(descr, t.dtype))
    return bad("dtype '" + descr +
               "' is not supported; use little-endian float32, float64, int32 "
               "or int64 (for example np.asarray(x, dtype=np.float32))");
  if (!findKey(header, "fortran_order", pos))
    return bad("header has no 'fortran_order'");
  if (header.compare(pos, 4, "True") == 0)
    return bad("Fortran-ordered arrays are not supported; save "
               "np.ascontiguousarray(x)");
  if (!findKey(header, "shape", pos) || header[pos] != '(')
    return bad("header has no 'shape' tuple");
  size_t end = header.find(')', pos);
  if (end == std::string::npos)
    return bad("unterminated 'shape'");
  std::string dims = header.substr(pos + 1, end - pos - 1);
  size_t i = 0;
  while (i < dims.size()) {
    while (i < dims.size() && (dims[i] == ' ' || dims[i] == ','))
      ++i;
    if (i >= dims.size())
      break;
    if (!std::isdigit(static_cast<unsigned char>(dims[i])))
      return bad("shape '(" + dims + ")' is not a tuple of integers");
    int64_t d = 0;
    while (i < dims.size() &&
           std::isdigit(static_cast<unsigned char>(dims[i]))) {
      d = d * 10 + (dims[i] - '0');
      if (d > (int64_t(1) << 40))
        return bad("shape '(" + dims + ")' is too large");
      ++i;
    }
    t.shape.push_back(d);
  }
  uint64_t bytes;
  if (!checkedByteCount(t.shape, dtypeSize(t.dtype), bytes))
    return bad("shape " + shapeToString(t.shape) +
               " is too large for any file");
  size_t dataStart = headerStart + headerLen;
  if (data.size() - dataStart != bytes)
    return bad("shape " + shapeToString(t.shape) + " of " + descr + " needs " +
               std::to_string(bytes) + " bytes of data but the file has " +
               std::to_string(data.size() - dataStart));
  t.bytes.assign(data.begin() + dataStart, data.end());
  return t;
}

Status writeNpy(const std::string &path, const HostTensor &tensor) {
  static const char *descr[] = {"<f4", "<f8", "<i4", "<i8"};
  std::string shape;
  for (int64_t d : tensor.shape)
    shape += std::to_string(d) + ", ";
  if (tensor.shape.size() > 1)
    shape.resize(shape.size() - 2);
  else if (tensor.shape.size() == 1)
    shape.resize(shape.size() - 1);
  std::string header = "{'descr': '" +
                       std::string(descr[static_cast<int>(tensor.dtype)]) +
                       "', 'fortran_order': False, 'shape': (" + shape + "), }";
  // Pad so that the data starts on a 64-byte boundary, ending in '\n'.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xFF);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  out.append(reinterpret_cast<const char *>(tensor.bytes.data()),
             tensor.bytes.size());
  return writeFileAtomically(path, out);
}

} // namespace aim
