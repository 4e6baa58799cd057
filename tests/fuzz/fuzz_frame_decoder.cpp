// Bytes of a TCP stream, fed in pieces whose sizes come from the input.
#include "wire/wire.hpp"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    dtcall::wire::FrameDecoder decoder(data[0] * 16u + 1);
    std::uint8_t key[32] = {7};
    dtcall::Bytes frame;
    std::size_t at = 1;
    while (at < size) {
        std::size_t piece = 1 + data[at] % 64;
        if (piece > size - at) piece = size - at;
        decoder.feed(data + at, piece);
        at += piece;
        for (;;) {
            auto status = decoder.next(frame);
            if (status != dtcall::wire::FrameDecoder::Status::frame) {
                if (status != dtcall::wire::FrameDecoder::Status::need_more) return 0;
                break;
            }
            (void)dtcall::open_secret_frame(key, frame.data(), frame.size());
        }
    }
    return 0;
}
