//===- HostLinker.cpp - an object file into a shared object ---------------===//
#include "codegen/host/HostLinker.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>

namespace mlir::aim {

llvm::Expected<std::string> linkSharedObject(const std::string &object) {
  auto error = [](const llvm::Twine &message) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   message.str().c_str());
  };
  const char *cc = std::getenv("CC");
  llvm::ErrorOr<std::string> driver =
      llvm::sys::findProgramByName(cc && *cc ? cc : "cc");
  if (!driver)
    return error("cannot link host code: no C compiler driver found (set CC "
                 "or install gcc)");
  llvm::SmallString<128> objectPath, libraryPath;
  int fd;
  if (llvm::sys::fs::createTemporaryFile("aimc-host", "o", fd, objectPath))
    return error("cannot create a temporary file for the host object");
  {
    llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
    os << object;
  }
  if (llvm::sys::fs::createTemporaryFile("aimc-host", "so", libraryPath))
    return error("cannot create a temporary file for the host library");
  llvm::SmallVector<llvm::StringRef> args = {*driver,     "-shared",  "-o",
                                             libraryPath, objectPath, "-lm"};
  std::string message;
  int status = llvm::sys::ExecuteAndWait(*driver, args, std::nullopt, {}, 0, 0,
                                         &message);
  llvm::sys::fs::remove(objectPath);
  if (status != 0) {
    llvm::sys::fs::remove(libraryPath);
    return error("linking host code with " + *driver + " failed" +
                 (message.empty() ? "" : ": " + message));
  }
  auto library = llvm::MemoryBuffer::getFile(libraryPath);
  llvm::sys::fs::remove(libraryPath);
  if (!library)
    return error("cannot read the linked host library");
  return (*library)->getBuffer().str();
}

} // namespace mlir::aim
