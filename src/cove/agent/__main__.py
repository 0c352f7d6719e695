from cove.agent.main import main

main()
