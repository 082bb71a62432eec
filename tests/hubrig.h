#pragma once
// What the hub-level tests stand on: a registry, a hub on a free loopback port and a
// CommandService over them. start() is separate so that a test can attach services first.
#include "changefeed.h"
#include "commandregistry.h"
#include "commandservice.h"
#include "hub.h"

#include <memory>
#include <string>

// Send options that wait up to `wait` for the bot to connect, nothing else set.
inline opconsole::SendOptions waitingUpTo(std::chrono::milliseconds wait)
{
    opconsole::SendOptions options;
    options.connectTimeout = wait;
    return options;
}

struct HubRig
{
    explicit HubRig(opconsole::HubOptions options = {})
    {
        options.listenAddress = QStringLiteral("127.0.0.1:0");
        hub = std::make_unique<opconsole::Hub>(registry, options);
        service = std::make_unique<opconsole::CommandService>(registry, *hub);
    }
    bool start() { return started = hub->start(); }
    std::string address() const { return hub->address().toStdString(); } // bots
    // The Operator API's listener (built when an OperatorService is attached).
    std::string operatorAddress() const { return hub->operatorAddress().toStdString(); }

    opconsole::CommandRegistry registry;
    opconsole::ChangeFeed feed{registry}; // what the Operator API's Watch and the GUI read
    std::unique_ptr<opconsole::Hub> hub;
    std::unique_ptr<opconsole::CommandService> service;
    bool started = false;
};
