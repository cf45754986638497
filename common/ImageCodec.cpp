//===- ImageCodec.cpp - PNG and JPEG files to and from Image --------------===//
#include "common/ImageCodec.h"

#include "common/FileIO.h"

#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
// jpeglib.h needs size_t and FILE declared first.
#include <jpeglib.h>

namespace aim {

namespace {

bool isPng(const std::string &bytes) {
  return bytes.size() >= 8 &&
         png_sig_cmp(reinterpret_cast<png_const_bytep>(bytes.data()), 0, 8) ==
             0;
}

bool isJpeg(const std::string &bytes) {
  return bytes.size() >= 3 && static_cast<uint8_t>(bytes[0]) == 0xFF &&
         static_cast<uint8_t>(bytes[1]) == 0xD8 &&
         static_cast<uint8_t>(bytes[2]) == 0xFF;
}

Status tooLarge(const std::string &name, int64_t height, int64_t width) {
  return Status::error(name + ": " + std::to_string(width) + "x" +
                       std::to_string(height) +
                       " pixels is more than this reader accepts (" +
                       std::to_string(kMaxImagePixels) + " pixels)");
}

/// libpng's simplified API: every colour type and depth, no setjmp here.
StatusOr<Image> decodePng(const std::string &bytes, const std::string &name) {
  png_image png;
  std::memset(&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&png, bytes.data(), bytes.size()))
    return Status::error(name + ": not a readable PNG (" + png.message + ")");
  Image image;
  image.height = png.height;
  image.width = png.width;
  if (image.height * image.width > kMaxImagePixels) {
    png_image_free(&png);
    return tooLarge(name, image.height, image.width);
  }
  bool colour = png.format & PNG_FORMAT_FLAG_COLOR;
  png.format = colour ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  image.channels = colour ? 3 : 1;
  image.pixels.resize(static_cast<size_t>(image.height * image.width *
                                          image.channels));
  png_color black = {0, 0, 0};
  if (!png_image_finish_read(&png, &black, image.pixels.data(), 0, nullptr))
    return Status::error(name + ": damaged PNG data (" + png.message + ")");
  return image;
}

struct JpegErrors {
  jpeg_error_mgr manager;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool warned;
};

void onJpegError(j_common_ptr info) {
  auto *errors = reinterpret_cast<JpegErrors *>(info->err);
  info->err->format_message(info, errors->message);
  std::longjmp(errors->jump, 1);
}

/// Warnings (level -1) mean corrupt data that libjpeg would paper over with
/// gray: such a file is refused rather than trained on.
void onJpegMessage(j_common_ptr info, int level) {
  auto *errors = reinterpret_cast<JpegErrors *>(info->err);
  if (level < 0 && !errors->warned) {
    errors->warned = true;
    info->err->format_message(info, errors->message);
  }
}

/// Decodes into `image` (declared by the caller: nothing with a destructor
/// lives in this frame, which longjmp may leave).
bool decodeJpegInto(const std::string &bytes, Image &image, JpegErrors &errors,
                    bool &refusedColourSpace) {
  jpeg_decompress_struct info;
  info.err = jpeg_std_error(&errors.manager);
  errors.manager.error_exit = onJpegError;
  errors.manager.emit_message = onJpegMessage;
  errors.warned = false;
  if (setjmp(errors.jump)) {
    jpeg_destroy_decompress(&info);
    return false;
  }
  jpeg_create_decompress(&info);
  jpeg_mem_src(&info, reinterpret_cast<const unsigned char *>(bytes.data()),
               static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&info, TRUE);
  if (info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK) {
    refusedColourSpace = true;
    jpeg_destroy_decompress(&info);
    return false;
  }
  info.out_color_space =
      info.jpeg_color_space == JCS_GRAYSCALE ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&info);
  image.height = info.output_height;
  image.width = info.output_width;
  image.channels = info.output_components;
  if (image.height * image.width > kMaxImagePixels) {
    image.pixels.clear();
    jpeg_destroy_decompress(&info);
    return true; // the caller reports the size
  }
  image.pixels.resize(static_cast<size_t>(image.height * image.width *
                                          image.channels));
  while (info.output_scanline < info.output_height) {
    JSAMPROW row = image.pixels.data() +
                   static_cast<size_t>(info.output_scanline) * image.width *
                       image.channels;
    jpeg_read_scanlines(&info, &row, 1);
  }
  jpeg_finish_decompress(&info);
  jpeg_destroy_decompress(&info);
  return true;
}

StatusOr<Image> decodeJpeg(const std::string &bytes, const std::string &name) {
  Image image;
  JpegErrors errors;
  bool refusedColourSpace = false;
  if (!decodeJpegInto(bytes, image, errors, refusedColourSpace)) {
    if (refusedColourSpace)
      return Status::error(name + ": CMYK JPEGs are not supported; convert "
                                  "the image to RGB");
    return Status::error(name + ": not a readable JPEG (" +
                         std::string(errors.message) + ")");
  }
  if (image.pixels.empty())
    return tooLarge(name, image.height, image.width);
  if (errors.warned)
    return Status::error(name + ": damaged JPEG data (" +
                         std::string(errors.message) + ")");
  return image;
}

Status checkWritable(const Image &image, const std::string &path) {
  if ((image.channels != 1 && image.channels != 3) || image.height <= 0 ||
      image.width <= 0 ||
      image.pixels.size() !=
          static_cast<size_t>(image.height * image.width * image.channels))
    return Status::error(path + ": cannot write a " +
                         std::to_string(image.width) + "x" +
                         std::to_string(image.height) + "x" +
                         std::to_string(image.channels) + " image");
  return Status::ok();
}

} // namespace

StatusOr<Image> decodeImage(const std::string &bytes, const std::string &name) {
  if (isPng(bytes))
    return decodePng(bytes, name);
  if (isJpeg(bytes))
    return decodeJpeg(bytes, name);
  return Status::error(name + ": neither a PNG nor a JPEG file (by its "
                              "first bytes)");
}

StatusOr<Image> readImageFile(const std::string &path) {
  StatusOr<std::string> bytes = readWholeFile(path);
  if (!bytes)
    return bytes.status();
  return decodeImage(*bytes, path);
}

Status writePng(const std::string &path, const Image &image) {
  if (Status s = checkWritable(image, path); !s)
    return s;
  png_image png;
  std::memset(&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(image.width);
  png.height = static_cast<png_uint_32>(image.height);
  png.format = image.channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&png, nullptr, &size, 0, image.pixels.data(),
                                 0, nullptr))
    return Status::error(path + ": PNG encoding failed (" +
                         std::string(png.message) + ")");
  std::string bytes(size, '\0');
  if (!png_image_write_to_memory(&png, bytes.data(), &size, 0,
                                 image.pixels.data(), 0, nullptr))
    return Status::error(path + ": PNG encoding failed (" +
                         std::string(png.message) + ")");
  bytes.resize(size);
  return writeFileAtomically(path, bytes);
}

Status writeJpeg(const std::string &path, const Image &image, int quality) {
  if (Status s = checkWritable(image, path); !s)
    return s;
  jpeg_compress_struct info;
  jpeg_error_mgr errors;
  info.err = jpeg_std_error(&errors); // encoding our own buffer cannot fail
  jpeg_create_compress(&info);
  unsigned char *buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&info, &buffer, &size);
  info.image_width = static_cast<JDIMENSION>(image.width);
  info.image_height = static_cast<JDIMENSION>(image.height);
  info.input_components = static_cast<int>(image.channels);
  info.in_color_space = image.channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
  jpeg_set_defaults(&info);
  jpeg_set_quality(&info, quality, TRUE);
  jpeg_start_compress(&info, TRUE);
  while (info.next_scanline < info.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(image.pixels.data() +
                                        static_cast<size_t>(info.next_scanline) *
                                            image.width * image.channels);
    jpeg_write_scanlines(&info, &row, 1);
  }
  jpeg_finish_compress(&info);
  std::string bytes(reinterpret_cast<char *>(buffer), size);
  jpeg_destroy_compress(&info);
  std::free(buffer);
  return writeFileAtomically(path, bytes);
}

} // namespace aim
