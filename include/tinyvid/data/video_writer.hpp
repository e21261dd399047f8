#pragma once
// Video writing on FFmpeg (libavformat, libavcodec, libswscale): RGB tv::data::Image frames in, an MP4 out.
// H.264 when this FFmpeg has an H.264 encoder (Debian's is built with libx264), else MPEG-4 Part 2, which
// every libavcodec has. Link tinyvid::video.
//
// The output is bit-exact for the same frames: the encoder runs on one thread (x264's frame threads make
// its rate control depend on timing), without x264's AVX-512 code (see below), and the muxer and encoder
// are asked for bit-exact output (no version strings, no wall-clock creation time), so a dataset written
// twice is the same bytes.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

#include "tinyvid/core/error.hpp"
#include "tinyvid/data/image.hpp"
#include "tinyvid/data/video.hpp"  // av_error_string and the deleters

namespace tv::data {

class VideoWriter {
 public:
  // width and height must be even (4:2:0 chroma halves both); fps > 0.
  VideoWriter(const std::string& path, int64_t width, int64_t height, double fps) : path_(path), width_(width), height_(height) {
    TV_CHECK(width >= 2 && height >= 2 && width % 2 == 0 && height % 2 == 0,
             "VideoWriter: expected an even width and height >= 2 (4:2:0 video), got ", width, "x", height, " for '", path, "'");
    TV_CHECK(fps > 0 && std::isfinite(fps), "VideoWriter: expected fps > 0, got ", fps, " for '", path, "'");
    AVFormatContext* raw = nullptr;
    // The format is named, not guessed from the extension: callers write to a temporary name and rename.
    const std::string url = detail::local_file_url(path);  // the file itself, never a protocol such as "pipe:1"
    int r = avformat_alloc_output_context2(&raw, nullptr, "mp4", url.c_str());
    TV_CHECK(r >= 0 && raw, "VideoWriter: cannot set up an MP4 muxer for '", path, "': ", detail::av_error_string(r));
    fmt_.reset(raw);
    fmt_->flags |= AVFMT_FLAG_BITEXACT;

    const AVCodec* enc = avcodec_find_encoder(AV_CODEC_ID_H264);
    if (!enc) enc = avcodec_find_encoder(AV_CODEC_ID_MPEG4);
    TV_CHECK(enc, "VideoWriter: this FFmpeg has neither an H.264 nor an MPEG-4 encoder, cannot write '", path, "'");
    st_ = avformat_new_stream(fmt_.get(), nullptr);
    cc_.reset(avcodec_alloc_context3(enc));
    TV_CHECK(st_ && cc_, "VideoWriter: out of memory opening '", path, "'");

    const AVRational rate = av_d2q(fps, 100000);
    cc_->width = static_cast<int>(width);
    cc_->height = static_cast<int>(height);
    cc_->framerate = rate;
    cc_->time_base = av_inv_q(rate);
    cc_->pix_fmt = AV_PIX_FMT_YUV420P;
    cc_->gop_size = 16;  // a key frame every 16 frames keeps random access into clips cheap
    cc_->thread_count = 1;
    cc_->flags |= AV_CODEC_FLAG_BITEXACT;
    if (fmt_->oformat->flags & AVFMT_GLOBALHEADER) cc_->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if (enc->id == AV_CODEC_ID_H264) {
      // Near-transparent quality at a fast preset: the content is synthetic and small. fastdecode (CAVLC, no
      // deblocking, no weighted prediction) halves what a training loader spends decoding these files.
      av_opt_set(cc_->priv_data, "preset", "veryfast", 0);
      av_opt_set(cc_->priv_data, "tune", "fastdecode", 0);
      av_opt_set(cc_->priv_data, "crf", "18", 0);
#if defined(__x86_64__) || defined(__i386__)
      // x264's AVX-512 macroblock-tree code reads memory it never wrote (the bytes of an encode followed the
      // heap's old contents: MALLOC_PERTURB_ changed them, valgrind cannot see AVX-512): capped at AVX2, the
      // same frames always give the same file.
      if (__builtin_cpu_supports("avx512f")) av_opt_set(cc_->priv_data, "x264-params", "asm=avx2", 0);
#endif
    } else {
      cc_->flags |= AV_CODEC_FLAG_QSCALE;
      cc_->global_quality = FF_QP2LAMBDA * 3;
    }
    r = avcodec_open2(cc_.get(), enc, nullptr);
    TV_CHECK(r >= 0, "VideoWriter: cannot open the ", enc->name, " encoder for '", path, "' (", width, "x", height,
             " at ", fps, " fps): ", detail::av_error_string(r));
    r = avcodec_parameters_from_context(st_->codecpar, cc_.get());
    TV_CHECK(r >= 0, "VideoWriter: cannot set the stream parameters of '", path, "': ", detail::av_error_string(r));
    st_->time_base = cc_->time_base;
    st_->avg_frame_rate = rate;

    frame_.reset(av_frame_alloc());
    pkt_.reset(av_packet_alloc());
    TV_CHECK(frame_ && pkt_, "VideoWriter: out of memory opening '", path, "'");
    frame_->format = cc_->pix_fmt;
    frame_->width = cc_->width;
    frame_->height = cc_->height;
    r = av_frame_get_buffer(frame_.get(), 0);
    TV_CHECK(r >= 0, "VideoWriter: cannot allocate a frame for '", path, "': ", detail::av_error_string(r));
    sws_.reset(sws_getContext(cc_->width, cc_->height, AV_PIX_FMT_RGB24, cc_->width, cc_->height, cc_->pix_fmt,
                              SWS_BILINEAR, nullptr, nullptr, nullptr));
    TV_CHECK(sws_, "VideoWriter: cannot set up RGB to ", av_get_pix_fmt_name(cc_->pix_fmt), " conversion for '", path, "'");

    AVDictionary* options = detail::local_file_options();
    r = avio_open2(&fmt_->pb, url.c_str(), AVIO_FLAG_WRITE, nullptr, &options);
    av_dict_free(&options);
    TV_CHECK(r >= 0, "VideoWriter: cannot create '", path, "': ", detail::av_error_string(r));
    r = avformat_write_header(fmt_.get(), nullptr);
    if (r < 0) {
      avio_closep(&fmt_->pb);
      TV_FAIL("VideoWriter: cannot write the header of '", path, "': ", detail::av_error_string(r));
    }
    open_ = true;
  }

  VideoWriter(const VideoWriter&) = delete;
  VideoWriter& operator=(const VideoWriter&) = delete;

  // Closes the file if close() was not called; errors are swallowed here (a destructor must not throw),
  // so call close() to see them.
  ~VideoWriter() {
    try {
      close();
    } catch (...) {
    }
  }

  const std::string& path() const { return path_; }
  std::string codec() const { return cc_ ? cc_->codec->name : ""; }
  int64_t frames_written() const { return next_pts_; }

  void write(const Image& img) {
    TV_CHECK(open_, "VideoWriter: '", path_, "' is already closed");
    TV_CHECK(img.height == height_ && img.width == width_ && img.channels == 3,
             "VideoWriter: expected a ", width_, "x", height_, " RGB frame for '", path_, "', got ", img.width, "x",
             img.height, " with ", img.channels, " channel(s)");
    int r = av_frame_make_writable(frame_.get());  // the encoder may still hold the previous buffer
    TV_CHECK(r >= 0, "VideoWriter: cannot get a writable frame for '", path_, "': ", detail::av_error_string(r));
    // swscale's SIMD RGB reader loads 16 bytes at a time and reads past the end of an unpadded image (valgrind:
    // 4 bytes past the last row at 32x32): the rows go through a buffer of 64-byte rows with slack at the end.
    const size_t row = static_cast<size_t>(width_) * 3, stride = (row + 63) / 64 * 64;
    padded_.resize(stride * static_cast<size_t>(height_) + 64);
    for (int64_t y = 0; y < height_; ++y) std::memcpy(padded_.data() + static_cast<size_t>(y) * stride, img.row(y), row);
    const uint8_t* src[4] = {padded_.data(), nullptr, nullptr, nullptr};
    const int src_stride[4] = {static_cast<int>(stride), 0, 0, 0};
    sws_scale(sws_.get(), src, src_stride, 0, static_cast<int>(height_), frame_->data, frame_->linesize);
    frame_->pts = next_pts_++;
    send_(frame_.get());
  }

  // Flushes the encoder and writes the trailer (the MP4 index); the file is complete after this.
  void close() {
    if (!open_) return;
    open_ = false;
    try {
      send_(nullptr);
    } catch (...) {
      avio_closep(&fmt_->pb);
      throw;
    }
    const int r = av_write_trailer(fmt_.get());
    avio_closep(&fmt_->pb);
    TV_CHECK(r >= 0, "VideoWriter: cannot write the trailer of '", path_, "': ", detail::av_error_string(r));
    TV_CHECK(next_pts_ > 0, "VideoWriter: no frames were written to '", path_, "'");
  }

 private:
  struct ContextFreer {
    void operator()(AVFormatContext* p) const {
      if (p && p->pb) avio_closep(&p->pb);
      avformat_free_context(p);
    }
  };

  // Sends a frame (nullptr: end of stream) and muxes every packet that comes out.
  void send_(AVFrame* f) {
    int r = avcodec_send_frame(cc_.get(), f);
    TV_CHECK(r >= 0, "VideoWriter: encoding a frame of '", path_, "' failed: ", detail::av_error_string(r));
    for (;;) {
      r = avcodec_receive_packet(cc_.get(), pkt_.get());
      if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return;
      TV_CHECK(r >= 0, "VideoWriter: encoding '", path_, "' failed: ", detail::av_error_string(r));
      av_packet_rescale_ts(pkt_.get(), cc_->time_base, st_->time_base);
      pkt_->stream_index = st_->index;
      r = av_interleaved_write_frame(fmt_.get(), pkt_.get());  // takes the packet's reference
      TV_CHECK(r >= 0, "VideoWriter: writing to '", path_, "' failed: ", detail::av_error_string(r));
    }
  }

  std::string path_;
  int64_t width_ = 0, height_ = 0;
  std::unique_ptr<AVFormatContext, ContextFreer> fmt_;
  AVStream* st_ = nullptr;  // owned by fmt_
  std::unique_ptr<AVCodecContext, detail::CodecFreer> cc_;
  std::unique_ptr<AVFrame, detail::FrameFreer> frame_;
  std::unique_ptr<AVPacket, detail::PacketFreer> pkt_;
  std::unique_ptr<SwsContext, detail::SwsFreer> sws_;
  std::vector<uint8_t> padded_;  // the frame being converted, in padded rows
  int64_t next_pts_ = 0;
  bool open_ = false;
};

}  // namespace tv::data
