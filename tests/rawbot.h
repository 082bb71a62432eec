#pragma once
// A hand-driven bot for tests: a real gRPC client of the hub that sends exactly what a test
// tells it to, including things a well-behaved bot never would.

#include "opconsole/v1/botlink.grpc.pb.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

// How a RawBot reaches a hub that asks for credentials (default: plaintext, none).
struct RawBotCredentials
{
    std::shared_ptr<grpc::ChannelCredentials> channel; // TLS (security::channelCredentials)
    std::string token;                                 // sent as "authorization: Bearer <token>"
    std::string serverName;                            // TLS name override
};

class RawBot
{
public:
    explicit RawBot(const std::string &address, const RawBotCredentials &credentials = {})
    {
        grpc::ChannelArguments args;
        args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
        args.SetMaxSendMessageSize(16 * 1024 * 1024);
        if (!credentials.serverName.empty())
            args.SetSslTargetNameOverride(credentials.serverName);
        if (!credentials.token.empty())
            m_context.AddMetadata("authorization", "Bearer " + credentials.token);
        m_stub = opconsole::v1::BotLink::NewStub(grpc::CreateCustomChannel(
            address, credentials.channel ? credentials.channel : grpc::InsecureChannelCredentials(),
            args));
        m_stream = m_stub->Connect(&m_context);
        m_reader = std::thread([this] {
            opconsole::v1::HubMessage message;
            while (m_stream->Read(&message)) {
                std::lock_guard lock(m_mutex);
                m_inbox.push_back(message);
                m_changed.notify_all();
            }
            std::lock_guard lock(m_mutex);
            m_closed = true;
            m_changed.notify_all();
        });
    }

    ~RawBot()
    {
        m_context.TryCancel();
        finish();
    }

    bool send(const opconsole::v1::BotMessage &message)
    {
        std::lock_guard lock(m_writeMutex);
        return m_stream->Write(message);
    }

    // Says Hello and waits for Welcome; false on Reject or a closed stream.
    bool hello(const std::string &botId, std::map<std::string, std::string> labels = {})
    {
        const auto reply = sayHello(botId, std::move(labels));
        return reply && reply->has_welcome();
    }

    // Says Hello and returns the hub's first answer (Welcome, Held or Reject), if any.
    std::optional<opconsole::v1::HubMessage>
    sayHello(const std::string &botId, std::map<std::string, std::string> labels = {})
    {
        opconsole::v1::BotMessage message;
        message.mutable_hello()->set_bot_id(botId);
        message.mutable_hello()->set_protocol_version(1);
        for (const auto &[k, v] : labels)
            (*message.mutable_hello()->mutable_labels())[k] = v;
        send(message);
        const auto reply = read();
        if (reply && reply->has_welcome())
            welcome = reply->welcome();
        return reply;
    }

    bool heartbeat(uint64_t sequence = 1)
    {
        opconsole::v1::BotMessage message;
        message.mutable_heartbeat()->set_sequence(sequence);
        message.mutable_heartbeat()->set_state(opconsole::v1::BOT_STATE_RUNNING);
        return send(message);
    }

    bool ack(const std::string &commandId, bool success = true, const std::string &text = "ok",
             opconsole::v1::AckErrorCode code = opconsole::v1::ACK_ERROR_UNSPECIFIED)
    {
        opconsole::v1::BotMessage message;
        auto *ack = message.mutable_ack();
        ack->set_command_id(commandId);
        ack->set_success(success);
        ack->set_message(text);
        ack->set_error_code(code);
        return send(message);
    }

    bool progress(const std::string &commandId, unsigned percent, const std::string &text)
    {
        opconsole::v1::BotMessage message;
        auto *progress = message.mutable_progress();
        progress->set_command_id(commandId);
        progress->set_percent(percent);
        progress->set_message(text);
        return send(message);
    }

    // The next message from the hub, waiting up to `timeout`.
    std::optional<opconsole::v1::HubMessage>
    read(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000))
    {
        std::unique_lock lock(m_mutex);
        m_changed.wait_for(lock, timeout, [this] { return !m_inbox.empty() || m_closed; });
        if (m_inbox.empty())
            return std::nullopt;
        auto message = m_inbox.front();
        m_inbox.pop_front();
        return message;
    }

    // The next Command, skipping anything else.
    std::optional<opconsole::v1::Command>
    readCommand(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000))
    {
        const auto until = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < until) {
            const auto message = read(std::chrono::duration_cast<std::chrono::milliseconds>(
                until - std::chrono::steady_clock::now()));
            if (!message)
                return std::nullopt;
            if (message->has_command())
                return message->command();
        }
        return std::nullopt;
    }

    // Waits until the hub ends the stream; then its status.
    std::optional<grpc::Status>
    waitClosed(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000))
    {
        {
            std::unique_lock lock(m_mutex);
            if (!m_changed.wait_for(lock, timeout, [this] { return m_closed; }))
                return std::nullopt;
        }
        return finish();
    }

    void cancel() { m_context.TryCancel(); }

    opconsole::v1::Welcome welcome;

private:
    grpc::Status finish()
    {
        if (m_reader.joinable())
            m_reader.join();
        if (!m_finished) {
            m_finished = true;
            m_status = m_stream->Finish();
        }
        return m_status;
    }

    std::unique_ptr<opconsole::v1::BotLink::Stub> m_stub;
    grpc::ClientContext m_context;
    std::unique_ptr<grpc::ClientReaderWriter<opconsole::v1::BotMessage, opconsole::v1::HubMessage>>
        m_stream;
    std::thread m_reader;
    std::mutex m_writeMutex;
    std::mutex m_mutex;
    std::condition_variable m_changed;
    std::deque<opconsole::v1::HubMessage> m_inbox;
    bool m_closed = false;
    bool m_finished = false;
    grpc::Status m_status;
};
