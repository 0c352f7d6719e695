from cove.agent.app import main

main()
